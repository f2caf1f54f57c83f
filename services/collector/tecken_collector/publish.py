# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The scale-out path: crash storage in an object store (S3 API, the key
layout Antenna uses in its bucket and the Socorro processor reads) and
publishing crash ids to a queue: SQS or Google Pub/Sub, both behind
:class:`CrashPublisher` (:func:`build_publisher` picks one by
``COLLECTOR_CRASHMOVER_QUEUE_ENGINE``). Each crash id is one message whose
body is the id in UTF-8.

Bucket layout::

    v1/dump/<crash_id>                   the upload_file_minidump dump
    v1/<other_dump_name>/<crash_id>      any other dump
    v1/dump_names/<crash_id>             JSON list of dump names
    v1/raw_crash/<YYYYMMDD>/<crash_id>   raw crash JSON, written last
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from typing import Any, Protocol

import boto3
import botocore.exceptions
from botocore.config import Config

from tecken_collector.crashid import date_string_from_crash_id
from tecken_collector.crashstorage import StoredCrash
from tecken_shared.storage import Storage, StorageError

logger = logging.getLogger("tecken_collector.publish")

MAIN_DUMP = "upload_file_minidump"


class PublishError(Exception):
    """The object store or the queue failed; the crash stays in the outbox."""


class CrashStore(Protocol):
    """Where the crashmover copies a complete crash from local disk (an object
    store); raises PublishError when it cannot, and must be idempotent."""

    @property
    def name(self) -> str: ...

    def save(self, crash_id: str, crash: StoredCrash) -> None: ...

    def save_processed(self, crash_id: str, data: bytes) -> None: ...


class CrashPublisher(Protocol):
    """Where the crashmover announces a stored crash id (a queue); raises
    PublishError when it cannot. Consumers must tolerate a duplicate id."""

    @property
    def name(self) -> str: ...

    def publish(self, crash_id: str) -> None: ...


def dump_key(name: str, crash_id: str) -> str:
    return f"v1/{'dump' if name == MAIN_DUMP else name}/{crash_id}"


def dump_names_key(crash_id: str) -> str:
    return f"v1/dump_names/{crash_id}"


def raw_crash_key(crash_id: str) -> str:
    return f"v1/raw_crash/{date_string_from_crash_id(crash_id)}/{crash_id}"


class ObjectCrashStorage:
    """Writes a crash into a bucket: dumps first, the raw crash last."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def name(self) -> str:
        return self.storage.name

    def save(self, crash_id: str, crash: StoredCrash) -> None:
        try:
            for name, path in crash.dumps.items():
                with open(path, "rb") as f:
                    self.storage.put(
                        dump_key(name, crash_id), f, content_type="application/octet-stream"
                    )
            self.storage.put(
                dump_names_key(crash_id), crash.dump_names, content_type="application/json"
            )
            self.storage.put(
                raw_crash_key(crash_id), crash.raw_crash, content_type="application/json"
            )
        except (StorageError, OSError) as exc:
            raise PublishError(f"{crash_id}: cannot store in {self.name}: {exc}") from exc

    def save_processed(self, crash_id: str, data: bytes) -> None:
        """The processed crash (``v1/processed_crash/<id>``), as Socorro keys it."""
        try:
            self.storage.put(processed_crash_key(crash_id), data, content_type="application/json")
        except (StorageError, OSError) as exc:
            raise PublishError(f"{crash_id}: cannot store in {self.name}: {exc}") from exc


def processed_crash_key(crash_id: str) -> str:
    return f"v1/processed_crash/{crash_id}"


class SQSPublisher:
    """Sends each crash id (UTF-8) as one message to an SQS queue (AWS, or any
    SQS-compatible server through ``endpoint_url``)."""

    def __init__(
        self,
        queue: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 10,
        max_attempts: int = 2,
    ) -> None:
        if not queue.strip():
            raise ValueError("the SQS queue name is empty")
        self.queue = queue
        self.endpoint_url = endpoint_url
        self.client: Any = boto3.session.Session().client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
            ),
        )
        self._queue_url = queue if queue.startswith(("http://", "https://")) else None
        self.name = f"sqs queue {queue}" + (f" at {endpoint_url}" if endpoint_url else "")

    def queue_url(self) -> str:
        if self._queue_url is None:
            try:
                self._queue_url = self.client.get_queue_url(QueueName=self.queue)["QueueUrl"]
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise PublishError(f"{self.name}: cannot find the queue: {exc}") from exc
        return self._queue_url

    def publish(self, crash_id: str) -> None:
        url = self.queue_url()
        try:
            self.client.send_message(QueueUrl=url, MessageBody=crash_id)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise PublishError(f"{crash_id}: cannot publish to {self.name}: {exc}") from exc


#: A Pub/Sub topic path.
TOPIC_RE = re.compile(r"projects/[^/\s]+/topics/[^/\s]+")


class PubSubPublisher:
    """Publishes each crash id (UTF-8) as one message to a Google Pub/Sub
    topic (``projects/<project>/topics/<topic>``), waiting for the server's
    acknowledgement up to ``timeout`` seconds. Credentials come from
    Application Default Credentials; with ``endpoint`` (``host:port`` of an
    emulator) the channel is plain and anonymous.

    Untested against a live Pub/Sub or its emulator: none runs where the
    tests run. The shared contract test covers its failure behaviour
    (real gRPC to a closed port) and runs its delivery checks only when
    ``TECKEN_TEST_PUBSUB_EMULATOR_HOST`` names an emulator."""

    def __init__(self, topic: str, *, endpoint: str | None = None, timeout: float = 10) -> None:
        if not TOPIC_RE.fullmatch(topic):
            raise ValueError(f"Pub/Sub topic {topic!r} must be projects/<project>/topics/<topic>")
        from google.api_core.retry import Retry
        from google.cloud import pubsub_v1

        self.topic = topic
        self.timeout = timeout
        endpoint = (endpoint or "").removeprefix("http://").removeprefix("https://") or None
        self.name = f"pubsub topic {topic}" + (f" at {endpoint}" if endpoint else "")
        options = pubsub_v1.types.PublisherOptions(retry=Retry(timeout=timeout), timeout=timeout)
        kwargs: dict[str, Any] = {"publisher_options": options}
        if endpoint:
            import grpc
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

            kwargs["transport"] = PublisherGrpcTransport(channel=grpc.insecure_channel(endpoint))
        self._kwargs = kwargs
        self._client: Any = None

    @property
    def client(self) -> Any:
        """Made on first use: building it looks credentials up."""
        if self._client is None:
            from google.cloud import pubsub_v1

            try:
                self._client = pubsub_v1.PublisherClient(**self._kwargs)
            except Exception as exc:  # credentials missing or unusable
                raise PublishError(f"{self.name}: cannot make a client: {exc}") from exc
        return self._client

    def publish(self, crash_id: str) -> None:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        try:
            future = self.client.publish(self.topic, data=crash_id.encode("utf-8"))
            future.result(timeout=self.timeout)
        except (
            gexc.GoogleAPIError,
            auth_exc.GoogleAuthError,
            concurrent.futures.TimeoutError,
        ) as exc:
            raise PublishError(f"{crash_id}: cannot publish to {self.name}: {exc}") from exc


#: Queue engines (``COLLECTOR_CRASHMOVER_QUEUE_ENGINE``).
QUEUE_ENGINES = ("sqs", "pubsub")


def build_publisher(
    engine: str, queue: str, *, endpoint_url: str = "", region: str = ""
) -> CrashPublisher:
    """The publisher of ``engine`` for ``queue`` (an SQS queue name or URL, a
    Pub/Sub topic path). Raises ValueError naming what is wrong."""
    if engine == "sqs":
        return SQSPublisher(queue, endpoint_url=endpoint_url or None, region=region or None)
    if engine == "pubsub":
        return PubSubPublisher(queue, endpoint=endpoint_url or None)
    raise ValueError(f"queue engine {engine!r}: must be one of {', '.join(QUEUE_ENGINES)}")
