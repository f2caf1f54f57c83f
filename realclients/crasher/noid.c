/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/* Shared library built without a build id (-Wl,--build-id=none). */

int noid_value(int x) {
    return x * 3 + 1;
}
