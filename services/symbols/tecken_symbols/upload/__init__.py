# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbol uploads: zip archives (v1), upload by download URL, the v2
protocol, validation at the door, storing with dedupe, upload history."""
