# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""WSGI entry point for gunicorn: ``tecken_eliot.wsgi:application``."""

from tecken_eliot.app import create_app

application = create_app()
