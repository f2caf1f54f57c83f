# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Fixtures for the symbols tests: an app on SQLite or PostgreSQL, with
filesystem or S3 (moto) storage, all real."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest

from tecken_shared.config import build_config_manager
from tecken_shared.testing import FIXTURES_DIR
from tecken_symbols.app import create_app_and_context
from tecken_symbols.context import AppContext
from tecken_symbols.db import Database

FIXTURES = Path(os.environ.get("TECKEN_SYMBOLS_FIXTURES", "") or FIXTURES_DIR / "symbols")
#: Storage-shaped fixture files: <debug_file>/<debug_id>/<file>.
SYMBOLS_DIR = FIXTURES / "symbols"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/symbols.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/symbols.db"


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


def fs_storage_env(tmp_path: Path) -> dict[str, str]:
    return {
        "SYMBOLS_STORAGE_URL": f"file://{tmp_path}/storage/v1?durable=false",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp_path}/storage/try/v1?durable=false",
    }


def s3_storage_env(moto_server, bucket: str) -> dict[str, str]:
    q = f"endpoint_url={moto_server.endpoint_url}&region=us-east-1&presign=300"
    return {
        "SYMBOLS_STORAGE_URL": f"s3://{bucket}/v1?{q}",
        "SYMBOLS_TRY_STORAGE_URL": f"s3://{bucket}/try/v1?{q}",
    }


def gcs_storage_env(gcs_emulator) -> dict[str, str]:
    """Regular and try storage in a new bucket on the GCS emulator."""
    import uuid

    from tecken_shared.storage.gcs import GCSStorage

    bucket = f"tecken-test-{uuid.uuid4().hex[:12]}"
    GCSStorage(bucket, endpoint_url=gcs_emulator.endpoint_url).create_bucket()
    q = f"endpoint_url={gcs_emulator.endpoint_url}"
    return {
        "SYMBOLS_STORAGE_URL": f"gs://{bucket}/v1?{q}",
        "SYMBOLS_TRY_STORAGE_URL": f"gs://{bucket}/try/v1?{q}",
    }


@pytest.fixture(params=["s3", "gcs"])
def direct_storage_env(request) -> dict[str, str]:
    """Storage that v2 clients write to directly (S3 presigned PUTs on the
    moto server, GCS resumable sessions on the emulator)."""
    if request.param == "gcs":
        return gcs_storage_env(request.getfixturevalue("gcs_emulator"))
    return s3_storage_env(
        request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
    )


@dataclass
class Service:
    app: webtest.TestApp
    ctx: AppContext

    def put(self, key: str, data: bytes, *, try_symbols: bool = False, **kwargs) -> None:
        backend = self.ctx.storages.upload_backend(try_symbols)
        backend.storage.put(key, data, **kwargs)
        self.ctx.lookups.forget(key)


@pytest.fixture
def make_service(tmp_path) -> Iterator[Callable[..., Service]]:
    made: list[AppContext] = []

    def make(env: dict[str, str] | None = None, *, database_url: str | None = None) -> Service:
        full = {
            "SYMBOLS_DATABASE_URL": database_url or f"sqlite:///{tmp_path}/symbols.db",
            "SYMBOLS_PUBLIC_URL": "http://symbols.test",
            "SYMBOLS_METRICS_BACKEND": "none",
            "SYMBOLS_LOG_FORMAT": "text",
            "SYMBOLS_MISSING_SYMBOLS_FLUSH_INTERVAL": "3600",
            **fs_storage_env(tmp_path),
            **(env or {}),
        }
        app, ctx = create_app_and_context(build_config_manager(full, str(tmp_path / "none.env")))
        made.append(ctx)
        return Service(webtest.TestApp(app), ctx)

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture(params=["fs", "s3", "gcs"])
def storage_env(request, tmp_path) -> dict[str, str]:
    """Each storage backend: files, S3 (moto server), GCS (the emulator)."""
    if request.param == "fs":
        return fs_storage_env(tmp_path)
    if request.param == "gcs":
        return gcs_storage_env(request.getfixturevalue("gcs_emulator"))
    return s3_storage_env(
        request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
    )


@pytest.fixture
def service(database_url, storage_env, make_service) -> Service:
    """The app on every combination of database and storage backend."""
    return make_service(storage_env, database_url=database_url)


@pytest.fixture
def fs_service(make_service) -> Service:
    """The app on SQLite and filesystem storage (for tests that need neither)."""
    return make_service()


# -- people (issue 12): a real OpenID Connect provider process -------------------

OIDC_PROVIDER_SCRIPT = Path(__file__).parent / "oidc_provider.py"


@dataclass
class OIDCProvider:
    url: str
    client_id: str
    proc: Any = None

    def stop(self) -> None:
        """End the provider's process: it cannot be reached any more."""
        self.proc.terminate()
        self.proc.wait(10)

    def admin(self, what: str, **form: str) -> None:
        import requests

        requests.post(f"{self.url}/admin/{what}", data=form, timeout=5).raise_for_status()

    def env(self) -> dict[str, str]:
        return {
            "SYMBOLS_OIDC_ISSUER": self.url,
            "SYMBOLS_OIDC_CLIENT_ID": self.client_id,
            "SYMBOLS_OIDC_PROVIDER_NAME": "Test provider",
        }


def _oidc_provider_starter() -> Iterator[Callable[[str], OIDCProvider]]:
    import subprocess
    import sys

    from tecken_shared.testing.servers import free_port

    procs: list[subprocess.Popen] = []

    def start(redirect_uri: str, client_id: str = "tecken-test") -> OIDCProvider:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(OIDC_PROVIDER_SCRIPT), str(port), client_id, redirect_uri],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return OIDCProvider(f"http://127.0.0.1:{port}", client_id, proc)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def start_oidc_provider() -> Iterator[Callable[[str], OIDCProvider]]:
    """Start the test provider (tests/oidc_provider.py) as its own process,
    for a client whose callback is ``redirect_uri``."""
    yield from _oidc_provider_starter()


@pytest.fixture(scope="module")
def start_oidc_provider_module() -> Iterator[Callable[[str], OIDCProvider]]:
    """The same, for module-scoped fixtures (the browser walk)."""
    yield from _oidc_provider_starter()
