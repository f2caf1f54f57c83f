# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Sphinx configuration for the Tecken docs (`make docs`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "Tecken"
author = "Tecken contributors"
copyright = "2026, Tecken contributors (MPL-2.0)"
extensions = ["everett.sphinxext", "tecken_metrics"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
