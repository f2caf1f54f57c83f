# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every option of the collector, read with the ``collector`` namespace (so the
environment variables are ``COLLECTOR_<OPTION>``), and the builders that turn
options into components.

One style: each option is declared once, here, with its default. A component
reads its own option class once, either through a builder below or through a
``from_config(manager)`` on a settings record whose field names are the option
names and whose defaults are taken from the declarations
(:func:`read_options`, :func:`option_default`), e.g.
:class:`tecken_collector.payload.PayloadLimits`. This module imports only
domain modules that never import it back, so the web app (``app.py``) and the
crashmover process both start from here."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from everett.manager import (
    ConfigManager,
    Option,
    get_config_for_class,
    get_parser,
    parse_bool,
    parse_data_size,
)

from tecken_collector.crashstorage import FSCrashStorage
from tecken_collector.publish import QUEUE_ENGINES
from tecken_collector.seconds import parse_seconds
from tecken_collector.throttler import (
    Throttler,
    load_rules,
    parse_packagenames,
    parse_products,
)

NAMESPACE = "collector"
METRICS_YAML = Path(__file__).parent / "metrics.yaml"

T = TypeVar("T")


def parse_queue_engine(value: str) -> str:
    value = value.strip().lower()
    if value not in QUEUE_ENGINES:
        raise ValueError(f"{value!r}: must be one of {', '.join(QUEUE_ENGINES)}")
    return value


class AppConfig:
    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )


class StorageConfig:
    class Config:
        crashstorage_root = Option(
            default="var/collector/crashes",
            doc="Primary directory crashes are written to (date-based layout, fsync'd). "
            "It must exist: a missing directory counts as a failed mount and the "
            "crash goes to the fallback root.",
        )
        crashstorage_fallback_root = Option(
            default="",
            doc="Fallback directory (e.g. an NFS mount) used when the primary root fails "
            "(full, read-only, I/O error, missing). Empty: no fallback, the client gets "
            "a 500 and retries later.",
        )
        crashstorage_fsync = Option(
            default="true",
            parser=parse_bool,
            doc="fsync every file and directory before answering with a CrashID. Turn off "
            "only for throwaway environments.",
        )
        crashstorage_create_roots = Option(
            default="false",
            parser=parse_bool,
            doc="Create the storage roots at start-up if missing (local development).",
        )
        crashstorage_min_free_space = Option(
            default="100MiB",
            parser=parse_data_size,
            doc="/__heartbeat__ fails when a storage root has less free space than this "
            "(a root that cannot take a crash of COLLECTOR_MAX_REQUEST_SIZE and a few "
            "more; crashes then go to the fallback root, or are refused with a 500).",
        )
        crashstorage_min_free_inodes = Option(
            default="1000",
            parser=int,
            doc="/__heartbeat__ fails when a storage root has fewer free inodes than this "
            "(each crash takes 3 files and more with several dumps). Ignored on file "
            "systems that report no inode count.",
        )


class LimitsConfig:
    """Read into :class:`tecken_collector.payload.PayloadLimits` (one field per option)."""

    class Config:
        max_request_size = Option(
            default="25MiB",
            parser=parse_data_size,
            doc="Largest request body accepted (Content-Length); larger ones get 413 "
            "Discarded=malformed_payload_too_large without the body being read.",
        )
        accept_chunked = Option(
            default="false",
            parser=parse_bool,
            doc="Accept request bodies sent with Transfer-Encoding: chunked and no "
            "Content-Length, as Crashpad's libcurl uploader sends them, counting them "
            "against COLLECTOR_MAX_REQUEST_SIZE as they are read. Off by default, as in "
            "Antenna, where a proxy (nginx) in front buffers chunked bodies; turn it on "
            "when Crashpad clients reach the collector without such a proxy.",
        )
        max_decompressed_size = Option(
            default="400MiB",
            parser=parse_data_size,
            doc="Largest body after gzip decompression; beyond it the request gets 413 "
            "Discarded=malformed_decompressed_too_large (gzip bombs).",
        )
        max_annotations_size = Option(
            default="20MiB",
            parser=parse_data_size,
            doc="Largest total size of the annotation parts (text fields and JSON) of one "
            "crash; beyond it: 400 Discarded=malformed_invalid_payload_structure.",
        )
        parse_in_memory_max = Option(
            default="2MiB",
            parser=parse_data_size,
            doc="Bodies (after gzip decompression) up to this size are read whole and split "
            "in memory, which is faster; bigger ones are parsed as a stream. Bounds the "
            "memory a request holds; 0 always streams.",
        )
        spool_dir = Option(
            default="",
            doc="Directory dumps are spooled to while a request is parsed; empty means the "
            "system temporary directory.",
        )
        read_timeout = Option(
            default="60",
            parser=parse_seconds,
            doc="Seconds to wait for more of a request body before giving up with 408 "
            "Discarded=malformed_read_timeout (a client that sent less than its "
            "Content-Length); 0 waits as long as the server lets it. Applies under gunicorn.",
        )
        max_dumps = Option(
            default="100",
            parser=int,
            doc="Most dumps (distinct file parts) one crash may carry; more: 400 "
            "Discarded=malformed_too_many_dumps. Each dump becomes a file on disk, and "
            "crash reporters send a handful.",
        )
        spool_memory_size = Option(
            default="1MiB",
            parser=parse_data_size,
            doc="Dumps up to this size stay in memory while a request is parsed; larger "
            "ones are spooled to disk.",
        )
        spool_memory_total = Option(
            default="8MiB",
            parser=parse_data_size,
            doc="Memory the dumps of one request may hold in total while it is parsed; "
            "once reached, every further dump is spooled to disk whatever its size.",
        )


class BreakpadConfig:
    class Config:
        stage_submitter_bearer_token = Option(
            default="",
            alternate_keys=["root:BREAKPAD_STAGE_SUBMITTER_BEARER_TOKEN"],
            doc="Token (Authorization: Bearer) that allows a submission to carry its own "
            "crash id in a 'uuid' annotation (stage submitter replays). Empty: nobody may.",
        )


class ThrottlerConfig:
    class Config:
        throttler_rules = Option(
            default="mozilla",
            parser=load_rules,
            doc="Throttle rule set: 'mozilla' (Mozilla's production rules), 'accept_all', "
            "or 'package.module:NAME' naming a list of tecken_collector.throttler.Rule.",
        )
        throttler_products = Option(
            default="mozilla",
            parser=parse_products,
            doc="Products accepted by the unsupported_product rule: comma-separated names, "
            "'mozilla' for Fenix, Firefox, Firefox Enterprise, Focus, MozillaVPN, "
            "ReferenceBrowser, Thunderbird, or 'all' for any product.",
        )
        throttler_product_packagenames = Option(
            default="mozilla",
            parser=parse_packagenames,
            doc="Android package names per product for the unsupported_packagename rule: "
            "'Product=pkg1,pkg2;Product2=pkg3', 'mozilla' for Mozilla's list, or empty.",
        )


class CrashMoverConfig:
    """Read into :class:`tecken_collector.crashmover.MoverSettings` (one field per option)."""

    class Config:
        crashmover_storage_url = Option(
            default="",
            doc="Object store crashes are moved to, e.g. "
            "'s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1' "
            "(keys: v1/raw_crash/<date>/<id>, v1/dump/<id>, v1/dump_names/<id>). "
            "Empty: crashes stay on local disk.",
        )
        crashmover_queue = Option(
            default="",
            doc="Queue the id of each stored crash is published to: an SQS queue (name or "
            "queue URL), or a Pub/Sub topic (projects/<project>/topics/<topic>). "
            "Empty: nothing is published.",
        )
        crashmover_queue_engine = Option(
            default="sqs",
            parser=parse_queue_engine,
            doc="'sqs' (AWS SQS or a compatible server) or 'pubsub' (Google Pub/Sub, with "
            "Application Default Credentials). Pub/Sub is built behind the same interface "
            "as SQS and passes the shared contract test's failure checks, but it is "
            "untested against a live Pub/Sub (or its emulator).",
        )
        crashmover_queue_endpoint_url = Option(
            default="",
            doc="Endpoint of an SQS-compatible server (moto, ElasticMQ, LocalStack), or "
            "host:port of a Pub/Sub emulator; empty for AWS or Google Cloud.",
        )
        crashmover_queue_region = Option(
            default="us-east-1",
            alternate_keys=["root:AWS_DEFAULT_REGION"],
            doc="Region of the SQS queue (unused by Pub/Sub).",
        )
        crashmover_inline = Option(
            default="false",
            parser=parse_bool,
            doc="Also try to move each crash right after saving it, inside the request; "
            "failures are left to the crashmover process.",
        )
        crashmover_delete_local = Option(
            default="true",
            parser=parse_bool,
            doc="Delete the local copy of a crash once it is in the object store (only when "
            "COLLECTOR_CRASHMOVER_STORAGE_URL is set).",
        )
        crashmover_poll_interval = Option(
            default="1",
            parser=parse_seconds,
            doc="Seconds between two passes over the outbox.",
        )
        crashmover_concurrency = Option(
            default="8",
            parser=int,
            doc="Crashes moved at the same time by the crashmover (threads).",
        )
        crashmover_claim_timeout = Option(
            default="600",
            parser=parse_seconds,
            doc="Seconds after which a crash claimed by a crashmover that never finished "
            "it (it died) goes back to the outbox for any crashmover. Crashmovers sharing "
            "a root (the fallback root on NFS) claim each crash before moving it, so each "
            "is published once; keep this above the longest move (processing included).",
        )
        crashmover_processor_url = Option(
            default="",
            doc="eliot's base URL (e.g. http://127.0.0.1:8050). When set, the crashmover "
            "posts each stored crash's minidump to its POST /minidump and writes the "
            "processed crash (Socorro's json_dump and a few fields) beside the raw crash, "
            "<root>/<date>/processed_crash/<id>.json, and to the object store as "
            "v1/processed_crash/<id>. A crash eliot cannot take now (down, 5xx) stays in "
            "the outbox and is retried; one it refuses (400/413/422) is stored with a note. "
            "Empty: crashes are not processed.",
        )
        crashmover_processor_timeout = Option(
            default="120",
            parser=parse_seconds,
            doc="Seconds to wait for eliot's answer when processing one crash.",
        )
        crashmover_max_outbox = Option(
            default="1000",
            parser=int,
            doc="/__heartbeat__ reports an error when more crashes than this wait in the "
            "outbox (the crashmover is not keeping up or the endpoints are down).",
        )
        crashmover_stale_seconds = Option(
            default="600",
            parser=parse_seconds,
            doc="Temp files, outbox markers, dumps and dump names without a raw crash "
            "older than this are leftovers of a killed writer and are removed (the "
            "crashmover's sweep, once a minute).",
        )


# Every option class, in the order the start-up log and the docs list them.
CONFIG_COMPONENTS = (
    AppConfig,
    StorageConfig,
    LimitsConfig,
    BreakpadConfig,
    ThrottlerConfig,
    CrashMoverConfig,
)


def options(manager: ConfigManager, component: type) -> Any:
    """``component``'s options, read with the collector's namespace."""
    return manager.with_namespace(NAMESPACE).with_options(component)


def option_default(component: type, key: str) -> Any:
    """The parsed default of option ``key`` of ``component`` (for the field
    defaults of a settings record, so that defaults are written once)."""
    option = get_config_for_class(component)[key][0]
    return get_parser(option.parser)(option.default)


def read_options(manager: ConfigManager, component: type, record: type[T]) -> T:
    """``record`` (a dataclass whose field names are option names of
    ``component``) filled from the configuration, each option read once."""
    config = options(manager, component)
    return record(**{f.name: config(f.name) for f in fields(record)})  # type: ignore[arg-type]


def build_storage(manager: ConfigManager, *, outbox: bool) -> FSCrashStorage:
    """The local crash storage; ``outbox``: write an outbox marker for the
    crashmover with every crash (when a crashmover has somewhere to move it)."""
    config = options(manager, StorageConfig)
    return FSCrashStorage(
        config("crashstorage_root"),
        config("crashstorage_fallback_root") or None,
        durable=config("crashstorage_fsync"),
        outbox=outbox,
        create_roots=config("crashstorage_create_roots"),
    )


def build_throttler(manager: ConfigManager) -> Throttler:
    config = options(manager, ThrottlerConfig)
    return Throttler(
        config("throttler_rules"),
        config("throttler_products"),
        config("throttler_product_packagenames"),
    )


def processor_settings(manager: ConfigManager) -> tuple[str, float]:
    """(eliot URL, timeout) of crash processing (``tecken-process-crash``)."""
    config = options(manager, CrashMoverConfig)
    return config("crashmover_processor_url"), config("crashmover_processor_timeout")
