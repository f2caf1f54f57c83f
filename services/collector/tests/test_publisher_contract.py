# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The contract every crash-id publisher keeps, one test body per clause run
on each queue engine:

* each ``publish(crash_id)`` delivers one message whose body is the id in
  UTF-8 (a duplicate publish may deliver a duplicate);
* an unreachable or missing queue raises PublishError (the crash stays in the
  outbox), within a bounded time, and ``name`` says which queue.

SQS runs against moto's server. No Pub/Sub server runs here: its failure
clauses run for real (gRPC to a closed loopback port), its delivery clauses
only when ``TECKEN_TEST_PUBSUB_EMULATOR_HOST`` names a Pub/Sub emulator, and
are skipped (not faked) otherwise. Pub/Sub is therefore untested against a
live Pub/Sub."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
from collector_helpers import sqs_messages

from tecken_collector.publish import CrashPublisher, PublishError, build_publisher
from tecken_shared.testing.servers import free_port

CRASH_ID = "de1bb258-cbbf-4589-a673-34f800160918"
PUBSUB_EMULATOR = os.environ.get("TECKEN_TEST_PUBSUB_EMULATOR_HOST", "")


@dataclass
class Queue:
    """A live queue: its publisher and a way to read what arrived."""

    publisher: CrashPublisher
    received: Callable[[], list[str]]


def _sqs_queue(endpoint: str) -> Queue:
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    name = f"tecken-contract-{uuid.uuid4().hex[:12]}"
    client.create_queue(QueueName=name)

    def received() -> list[str]:
        return sqs_messages(endpoint, name)

    return Queue(build_publisher("sqs", name, endpoint_url=endpoint), received)


def _pubsub_queue(host: str) -> Queue:  # pragma: no cover - needs an emulator
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    project = "tecken-test"
    topic = f"projects/{project}/topics/crashes-{uuid.uuid4().hex[:12]}"
    sub = f"projects/{project}/subscriptions/crashes-{uuid.uuid4().hex[:12]}"
    admin = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    )
    admin.create_topic(name=topic)
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    subscriber.create_subscription(name=sub, topic=topic)

    def received() -> list[str]:
        resp = subscriber.pull(subscription=sub, max_messages=100, timeout=5)
        ids = [m.ack_id for m in resp.received_messages]
        if ids:
            subscriber.acknowledge(subscription=sub, ack_ids=ids)
        return [m.message.data.decode("utf-8") for m in resp.received_messages]

    return Queue(build_publisher("pubsub", topic, endpoint_url=host), received)


@pytest.fixture(params=["sqs", "pubsub"])
def engine(request) -> str:
    return request.param


@pytest.fixture
def live_queue(engine: str, request) -> Iterator[Queue]:
    if engine == "sqs":
        yield _sqs_queue(request.getfixturevalue("moto_server").endpoint_url)
    elif not PUBSUB_EMULATOR:
        pytest.skip(
            "no Pub/Sub server runs here: set TECKEN_TEST_PUBSUB_EMULATOR_HOST to run the "
            "delivery clauses against an emulator"
        )
    else:  # pragma: no cover - needs an emulator
        yield _pubsub_queue(PUBSUB_EMULATOR)


def _unreachable(engine: str) -> CrashPublisher:
    """A publisher of ``engine`` whose server is a closed loopback port."""
    endpoint = f"127.0.0.1:{free_port()}"
    if engine == "sqs":
        return build_publisher("sqs", "crashes", endpoint_url=f"http://{endpoint}")
    return build_publisher("pubsub", "projects/tecken/topics/crashes", endpoint_url=endpoint)


def test_each_publish_delivers_the_id(live_queue: Queue) -> None:
    others = [str(uuid.uuid4()) for _ in range(3)]
    for crash_id in [CRASH_ID, *others]:
        live_queue.publisher.publish(crash_id)
    got: list[str] = []
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        got += live_queue.received()
    assert sorted(got) == sorted([CRASH_ID, *others])


def test_a_duplicate_publish_is_allowed(live_queue: Queue) -> None:
    live_queue.publisher.publish(CRASH_ID)
    live_queue.publisher.publish(CRASH_ID)
    got: list[str] = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        got += live_queue.received()
    assert got == [CRASH_ID, CRASH_ID]


def test_an_unreachable_queue_raises_publish_error_in_bounded_time(engine: str) -> None:
    publisher = _unreachable(engine)
    start = time.monotonic()
    with pytest.raises(PublishError) as info:
        publisher.publish(CRASH_ID)
    assert time.monotonic() - start < 30
    assert publisher.name in str(info.value)


def test_a_bad_queue_name_is_refused_when_built(engine: str) -> None:
    with pytest.raises(ValueError):
        build_publisher(engine, "" if engine == "sqs" else "not/a/topic")
