# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Test helpers: real PostgreSQL, Redis and S3 (moto server), HTTP servers on
loopback. Loaded as a pytest plugin (``-p tecken_shared.testing.plugin``)."""
