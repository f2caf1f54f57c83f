# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The web UI: static HTML, one vanilla JS file and CSS under ``/ui/``.

The page talks to the existing JSON API with the ``Auth-Token`` the user
pastes in (kept in ``sessionStorage``); there is no session login. The files
live in ``static/`` and are served by :class:`~.resource.StaticFilesResource`."""

from tecken_symbols.webui.resource import StaticFilesResource, add_webui_routes

__all__ = ["StaticFilesResource", "add_webui_routes"]
