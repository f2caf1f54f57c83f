# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Fixtures for the collector tests: storage roots, app factories, crashes,
and small real filesystems (tmpfs) that can be made full or read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from tecken_collector.app import create_app
from tecken_shared.config import build_config_manager

sys.path.insert(0, str(Path(__file__).parent))

from collector_helpers import Tmpfs  # noqa: E402


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    primary = tmp_path / "primary"
    fallback = tmp_path / "fallback"
    primary.mkdir()
    fallback.mkdir()
    return primary, fallback


@pytest.fixture
def make_env(roots: tuple[Path, Path]) -> Callable[..., dict[str, str]]:
    def make(**overrides: str) -> dict[str, str]:
        env = {
            "COLLECTOR_CRASHSTORAGE_ROOT": str(roots[0]),
            "COLLECTOR_CRASHSTORAGE_FALLBACK_ROOT": str(roots[1]),
            "COLLECTOR_METRICS_BACKEND": "none",
            "COLLECTOR_LOG_FORMAT": "text",
        }
        env.update({f"COLLECTOR_{k.upper()}": v for k, v in overrides.items()})
        return env

    return make


@pytest.fixture
def make_app(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> Callable[..., Any]:
    def make(**overrides: str) -> webtest.TestApp:
        manager = build_config_manager(make_env(**overrides), str(tmp_path / "none.env"))
        return webtest.TestApp(create_app(manager))

    return make


@pytest.fixture
def app(make_app: Callable[..., webtest.TestApp]) -> webtest.TestApp:
    return make_app()


def _can_mount() -> bool:
    return os.geteuid() == 0 and bool(
        subprocess.run(["which", "mount"], capture_output=True).stdout
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Tmpfs]]:
    """Factory for small tmpfs mounts; skips (saying why) when not root."""
    if not _can_mount():
        pytest.skip("mounting a tmpfs for a real full/read-only filesystem needs root")
    mounts: list[Tmpfs] = []

    def make(name: str, size: str = "4m") -> Tmpfs:
        try:
            fs = Tmpfs(tmp_path / name, size)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.decode(errors='replace')}")
        mounts.append(fs)
        return fs

    yield make
    for fs in mounts:
        fs.umount()
