# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Fixtures: a real symbol server on 127.0.0.1 (tecken_eliot.testing) and an
eliot app configured against it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import webtest

from tecken_eliot.app import create_app
from tecken_eliot.testing import SymbolServer, build_symbol_tree
from tecken_shared.config import build_config_manager
from tecken_shared.testing.servers import wsgi_server


@pytest.fixture(scope="session")
def _symbol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SymbolServer]:
    server = SymbolServer(build_symbol_tree(tmp_path_factory.mktemp("symbols")))
    with wsgi_server(server) as url:
        server.url = url + "/"
        yield server


@pytest.fixture
def symbol_server(_symbol_server: SymbolServer) -> SymbolServer:
    """The session's symbol server with its counters and faults reset."""
    _symbol_server.hits.clear()
    _symbol_server.heads.clear()
    _symbol_server.faults.clear()
    _symbol_server.delay = 0.0
    _symbol_server.max_inflight = 0
    _symbol_server.redirect = False
    _symbol_server.gzip = False
    return _symbol_server


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


def write_heartbeat(cache_dir: Path) -> None:
    (cache_dir / "cache-manager.json").write_text(json.dumps({"time": time.time(), "pid": 0}))


def make_env(symbol_server: SymbolServer, cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "ELIOT_SYMBOL_URLS": symbol_server.url,
        "ELIOT_SYMBOLS_CACHE_DIR": str(cache_dir),
        "ELIOT_DOWNLOAD_RETRIES": "1",
        "ELIOT_DOWNLOAD_BACKOFF": "0.01",
        "ELIOT_DOWNLOAD_TIMEOUT": "2",
        "ELIOT_METRICS_BACKEND": "none",
    }
    env.update(extra)
    return env


@pytest.fixture
def make_app(symbol_server: SymbolServer, cache_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(**extra: str) -> webtest.TestApp:
        env = make_env(symbol_server, cache_dir, **extra)
        return webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))

    return make


@pytest.fixture
def make_node(symbol_server: SymbolServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Another eliot node: an app with a disk cache of its own, ``tmp_path/<name>``."""

    def make(name: str, **extra: str) -> webtest.TestApp:
        cache = tmp_path / name
        cache.mkdir()
        env = make_env(symbol_server, cache, **extra)
        return webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))

    return make


@pytest.fixture
def app(make_app) -> webtest.TestApp:  # type: ignore[no-untyped-def]
    return make_app()


@pytest.fixture
def tmpfs_cache(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Factory: a small real tmpfs mounted as a cache directory, so full and
    read-only disks are real. Skips (saying why) when mounting is impossible."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        path = tmp_path / f"tmpfs{len(mounts)}"
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
