/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/* Shared library (built with a GNU build id) holding the crashing frames. */

__attribute__((noinline)) void crash_here(volatile int *where) {
    *where = 42; /* CRASH LINE */
}

__attribute__((noinline)) void lib_entry(volatile int *where) {
    crash_here(where);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep lib_entry on the stack */
}
