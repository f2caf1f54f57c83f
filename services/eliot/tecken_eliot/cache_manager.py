# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The disk-cache manager process (placeholder until the Eliot issue lands)."""

import signal
import sys
import time


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
