# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""People on the web (issue 12): logins (OpenID Connect and local accounts),
server-side sessions with CSRF protection, self-service API tokens
(``/api/tokens/``), user management with an audit log, and the server-rendered
pages that use them. Everything is installed by :func:`.routes.add_people_routes`."""
