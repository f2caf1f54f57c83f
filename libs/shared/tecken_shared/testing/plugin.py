# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""pytest fixtures for real backing services. Every test gets its own
PostgreSQL database, Redis key prefix and S3 bucket, so tests (and several
test runs at once) never see each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tecken_shared.testing.sentry_ingest import sentry_ingest  # noqa: F401 - a fixture
from tecken_shared.testing.servers import (
    GCSEmulator,
    MissingServer,
    MotoServer,
    ThrowawayRedis,
    port_open,
    start_gcs_emulator,
    start_moto,
    start_postgres,
    start_redis,
    use_moto_credentials,
)


def _use_default_ports() -> bool:
    """``TECKEN_TEST_SERVERS=throwaway`` ignores servers on the default ports."""
    return os.environ.get("TECKEN_TEST_SERVERS", "") != "throwaway"


def _fail_missing(exc: MissingServer) -> None:
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _use_default_ports() and port_open("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
        return
    try:
        server = start_postgres()
    except MissingServer as exc:
        _fail_missing(exc)
    yield server.url
    server.stop()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    import psycopg

    name = f"tecken_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_server_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    if _use_default_ports() and port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    try:
        server = start_redis()
    except MissingServer as exc:
        _fail_missing(exc)
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """URL of a real Redis. Share it safely by using ``redis_prefix`` for keys;
    never FLUSHDB a shared server."""
    return redis_server_url


@pytest.fixture
def redis_prefix() -> str:
    return f"tecken-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def private_redis() -> Iterator[ThrowawayRedis]:
    """A Redis of this test's own, for fault tests (pause, stop, CLIENT PAUSE)."""
    try:
        server = start_redis()
    except MissingServer as exc:
        _fail_missing(exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3/SQS server on a free port of 127.0.0.1 (real HTTP)."""
    use_moto_credentials()
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"tecken-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage_url(moto_server: MotoServer, s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/prefix?endpoint_url={moto_server.endpoint_url}&region=us-east-1"


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    """A GCS API server (gcp-storage-emulator) on 127.0.0.1, shared by the session."""
    server = start_gcs_emulator()
    yield server
    server.stop()


@pytest.fixture
def gcs_storage_url(gcs_emulator: GCSEmulator) -> str:
    """A ``gs://`` URL of a new, empty bucket on the emulator."""
    from tecken_shared.storage.gcs import GCSStorage

    name = f"tecken-test-{uuid.uuid4().hex[:12]}"
    GCSStorage(name, endpoint_url=gcs_emulator.endpoint_url).create_bucket()
    return f"gs://{name}/prefix?endpoint_url={gcs_emulator.endpoint_url}"


@pytest.fixture
def metricsmock() -> Iterator[object]:
    from markus.testing import MetricsMock

    with MetricsMock() as mm:
        yield mm
