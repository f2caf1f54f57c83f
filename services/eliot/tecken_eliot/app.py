# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The eliot WSGI application: ``create_app()`` builds it from configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
import markus
from everett.manager import ConfigManager, Option, parse_data_size

from tecken_eliot import sentry_scrub
from tecken_eliot.diskcache import CacheConfig, DiskCache
from tecken_eliot.downloader import SymbolDownloader
from tecken_eliot.resources import SymbolicateV4Resource, SymbolicateV5Resource
from tecken_eliot.store import SymcacheStore
from tecken_eliot.symbolicate import Symbolicator
from tecken_shared.config import CommonConfig, build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes, read_version_info
from tecken_shared.service import setup_service

NAMESPACE = "eliot"
HERE = Path(__file__).parent
METRICS_YAML = HERE / "metrics.yaml"

logger = logging.getLogger("tecken_eliot")
metrics = markus.get_metrics("eliot")

CORS_EXPOSE_HEADERS = [
    "accept",
    "accept-encoding",
    "authorization",
    "content-type",
    "dnt",
    "origin",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
]


def parse_url_list(value: str) -> list[str]:
    """Comma-separated symbol server URLs; each must start with http."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("at least one symbol server URL is needed")
    for url in urls:
        if not url.startswith("http"):
            raise ValueError(f"symbol server URL {url!r} must start with http")
    return urls


class EliotCommonConfig(CommonConfig):
    """The common options with Eliot's own defaults, so existing Eliot
    deployments keep working."""

    class Config:
        statsd_port = Option(
            default="8124",
            parser=int,
            alternate_keys=["root:STATSD_PORT"],
            doc="statsd/dogstatsd UDP port (Eliot's default is 8124).",
        )


class AppConfig:
    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )
        symbol_urls = Option(
            default="http://localhost:3000/",
            parser=parse_url_list,
            alternate_keys=["SYMBOLS_URLS"],
            doc="Comma-separated symbol servers, tried in order for each module "
            "(URL rule: <server>/<debug_filename>/<DEBUG_ID>/<sym_filename>). "
            "ELIOT_SYMBOLS_URLS is accepted too. The default is the local symbols service.",
        )
        download_timeout = Option(
            default="5",
            parser=float,
            doc="Seconds to wait for a symbol server to connect or send data.",
        )
        download_retries = Option(
            default="2",
            parser=int,
            doc="Retries of a symbol download after a connection error, a timeout or a "
            "429/500/502/503/504 answer (exponential backoff with jitter).",
        )
        download_backoff = Option(
            default="0.5",
            parser=float,
            doc="Base of the retry backoff in seconds (waits up to base, 2*base, 4*base...).",
        )
        max_download_size = Option(
            default="2gb",
            parser=parse_data_size,
            doc="Largest sym file that is downloaded; bigger ones count as malformed.",
        )
        fetch_threads = Option(
            default="4",
            parser=int,
            doc="Cold modules of one request are fetched in parallel by up to this many "
            "threads per worker.",
        )
        open_symcaches = Option(
            default="64",
            parser=int,
            doc="How many memory-mapped symcaches a worker keeps open (LRU).",
        )
        touch_interval = Option(
            default="60",
            parser=float,
            doc="Seconds between a worker marking an open symcache as used on disk "
            "(what the cache manager's LRU order is based on).",
        )
        lock_timeout = Option(
            default="300",
            parser=float,
            doc="Seconds a worker waits for another process fetching the same module "
            "before fetching it itself.",
        )
        max_request_size = Option(
            default="10mb",
            parser=parse_data_size,
            doc="Largest accepted request body; bigger ones are a 400.",
        )
        cache_manager_max_age = Option(
            default="60",
            parser=float,
            doc="/__heartbeat__ fails when the cache manager's heartbeat is older than "
            "this many seconds. 0 disables the check.",
        )


class IndexResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = INDEX_HTML


INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Tecken eliot: symbolication</title></head>
<body>
<h1>Tecken eliot</h1>
<p>Symbolication API: <code>POST /symbolicate/v5</code> with
<code>{"jobs": [{"memoryMap": [["xul.pdb", "DEBUGID"]], "stacks": [[[0, 11723767]]]}]}</code>.
Add a <code>Debug: true</code> header for timings.</p>
<p>Deprecated: <code>POST /symbolicate/v4</code>.</p>
</body></html>
"""


class PageviewMiddleware:
    """Counts requests to known routes (``eliot.pageview``)."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict
    ) -> None:
        if resource is not None:
            metrics.incr("pageview", tags=[f"path:{req.path}", f"method:{req.method.lower()}"])


def cache_manager_check(disk: DiskCache, max_age: float):  # type: ignore[no-untyped-def]
    def check() -> str | None:
        if max_age <= 0:
            return None
        beat = disk.read_heartbeat()
        if beat is None:
            return (
                f"the cache manager has written no heartbeat ({disk.heartbeat_path()}); "
                "is it running?"
            )
        if beat["age"] > max_age:
            return (
                f"the cache manager's last heartbeat is {beat['age']:.0f}s old "
                f"(limit {max_age:.0f}s)"
            )
        return None

    return check


class EliotApp(falcon.App):
    """The Falcon app, holding its symcache store (tests and the bench use it)."""

    store: SymcacheStore


def setup_eliot_process(manager: ConfigManager, process: str) -> None:
    """Logging, metrics and Sentry for one of Eliot's processes: ``webapp`` or
    ``cachemanager`` (the tag Sentry scrub errors carry)."""
    config = manager.with_namespace(NAMESPACE).with_options(AppConfig)
    version = read_version_info(config("version_file"), "tecken-eliot")
    context = setup_service(
        "eliot",
        manager,
        NAMESPACE,
        METRICS_YAML,
        str(version.get("version")),
        common_options=EliotCommonConfig,
    )
    if context.sentry_on:
        sentry_scrub.install(process)


def create_app(manager: ConfigManager | None = None) -> EliotApp:
    manager = manager or build_config_manager()
    config = manager.with_namespace(NAMESPACE).with_options(AppConfig)
    cache_config = manager.with_namespace(NAMESPACE).with_options(CacheConfig)
    setup_eliot_process(manager, "webapp")

    disk = DiskCache.from_config(cache_config)
    downloader = SymbolDownloader(
        config("symbol_urls"),
        timeout=config("download_timeout"),
        retries=config("download_retries"),
        backoff=config("download_backoff"),
        max_size=config("max_download_size"),
        pool_size=max(10, config("fetch_threads")),
    )
    store = SymcacheStore(
        disk,
        downloader,
        max_open=config("open_symcaches"),
        fetch_threads=config("fetch_threads"),
        touch_interval=config("touch_interval"),
        lock_timeout=config("lock_timeout"),
    )
    symbolicator = Symbolicator(store)
    log_options(logger, manager, NAMESPACE, [AppConfig, CacheConfig])
    logger.info(
        "symbol servers: %s; cache: %s (max %s bytes)",
        ", ".join(config("symbol_urls")),
        disk.root,
        f"{disk.max_size:,}",
    )

    app = EliotApp(
        middleware=[
            falcon.CORSMiddleware(allow_origins="*", expose_headers=CORS_EXPOSE_HEADERS),
            PageviewMiddleware(),
        ]
    )
    app.add_route("/", IndexResource())
    max_body = config("max_request_size")
    app.add_route("/symbolicate/v5", SymbolicateV5Resource(symbolicator, max_body))
    app.add_route("/symbolicate/v4", SymbolicateV4Resource(symbolicator, max_body))
    add_dockerflow_routes(
        app,
        checks={
            "cache_dir": disk.check_writable,
            "cache_manager": cache_manager_check(disk, config("cache_manager_max_age")),
        },
        package="tecken-eliot",
        version_file=config("version_file"),
    )
    app.store = store
    return app
