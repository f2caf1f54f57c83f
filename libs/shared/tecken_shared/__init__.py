# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Plumbing shared by the Tecken services: config, metrics, storage, dockerflow,
logging and Sentry set-up, and the pytest fixtures for real backing services."""
