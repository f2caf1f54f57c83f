# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Eliot's configuration: the namespace, the metrics registry, every option
class, and the start-up of a process (logging, metrics, Sentry). Options are
read with the ``eliot`` namespace, so the variables are ``ELIOT_<OPTION>``.

One style: each component reads its own option class once, in its
``from_config(manager)``, and each default is written once, on its
``Option``. Constructor defaults that tests rely on come from there too
(:func:`default_of`). This module imports no other eliot module, so every
process (web app, cache manager) can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import markus
from everett.manager import (
    ConfigManager,
    Option,
    parse_bool,
    parse_data_size,
    parse_time_period,
)

from tecken_shared.config import CommonConfig, component_options
from tecken_shared.dockerflow import release_name
from tecken_shared.service import setup_service

NAMESPACE = "eliot"
#: The distribution name (``/__version__`` falls back to its version).
PACKAGE = "tecken-eliot"
METRICS_YAML = Path(__file__).parent / "metrics.yaml"

metrics = markus.get_metrics("eliot")


def parse_url_list(value: str) -> list[str]:
    """Comma-separated symbol server URLs; each must start with http."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("at least one symbol server URL is needed")
    for url in urls:
        if not url.startswith("http"):
            raise ValueError(f"symbol server URL {url!r} must start with http")
    return urls


#: The forms a module's symbols can take on a symbol server, by the name of
#: the file under ``<debug_filename>/<DEBUG_ID>/`` (see
#: :func:`tecken_eliot.naming.format_filename`): the Breakpad sym file, gzipped
#: or not; the debug file itself (ELF, PDB, Mach-O); gzipped as Mozilla stores
#: Linux ones (``.dbg.gz``); CAB-compressed as symstore stores Windows ones
#: (``xul.pd_``); Mozilla's tarred dSYM bundle (``.dSYM.tar.bz2``).
SYMBOL_FORMATS = ("sym", "sym.gz", "dbg.gz", "debug", "pd_", "dsym")


def parse_symbol_formats(value: str) -> tuple[str, ...]:
    """Comma-separated forms from :data:`SYMBOL_FORMATS`, in the order tried."""
    formats = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not formats:
        raise ValueError("at least one symbol format is needed")
    unknown = [fmt for fmt in formats if fmt not in SYMBOL_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown symbol format(s) {', '.join(unknown)}; known: {', '.join(SYMBOL_FORMATS)}"
        )
    return formats


#: The symbol-server protocols that name a module's debug files by identity
#: (:func:`tecken_eliot.naming.protocol_paths`), tried after every form.
SYMBOL_PROTOCOLS = ("symsrv", "debuginfod", "ssqp")


def parse_symbol_protocols(value: str) -> tuple[str, ...]:
    """Comma-separated protocols from :data:`SYMBOL_PROTOCOLS`, in the order
    tried; ``none`` for none."""
    if value.strip().lower() == "none":
        return ()
    protocols = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [p for p in protocols if p not in SYMBOL_PROTOCOLS]
    if unknown:
        raise ValueError(
            f"unknown symbol protocol(s) {', '.join(unknown)}; known: {', '.join(SYMBOL_PROTOCOLS)}"
        )
    return protocols


def read_options(manager: ConfigManager, options: type) -> dict[str, Any]:
    """``{option name: parsed value}`` of an option class, read with Eliot's
    namespace."""
    config = manager.with_namespace(NAMESPACE).with_options(options)
    return {name: config(name) for name in component_options(options)}


def default_of(options: type, name: str) -> Any:
    """The parsed default of one option: what a constructor uses when it is
    called without configuration (tests, the bench)."""
    option = component_options(options)[name][0]
    return option.parser(option.default)


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


class ProcessConfig:
    """Options of every eliot process (web app and cache manager)."""

    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )


class WebAppConfig:
    """Options of the web app itself (read in ``app.create_app``)."""

    class Config:
        max_request_size = Option(
            default="10mb",
            parser=parse_data_size,
            doc="Largest accepted request body (chunked bodies included); bigger ones are a 400.",
        )
        max_modules = Option(
            default="2000",
            parser=int,
            doc="Most memoryMap entries (modules) in one request, all jobs together; more "
            "are refused with 413. Each cold module costs a download from every symbol "
            "server, so this bounds what one request can make eliot fetch.",
        )
        max_frames = Option(
            default="100000",
            parser=int,
            doc="Most frames in one request, all jobs and stacks together; more are "
            "refused with 413.",
        )
        max_response_size = Option(
            default="50mb",
            parser=parse_data_size,
            doc="Largest answer eliot builds (estimated while it symbolicates, before "
            "serialising); a request whose answer would be larger is refused with 413 "
            "and should be split.",
        )
        cache_manager_max_age = Option(
            default="60",
            parser=float,
            doc="/__heartbeat__ fails when the cache manager's heartbeat is older than "
            "this many seconds. 0 disables the check.",
        )


class DownloaderConfig:
    """Options of ``downloader.SymbolDownloader``."""

    class Config:
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
        download_deadline = Option(
            default="60",
            parser=float,
            doc="Most seconds one module's download may take in all (retries, redirects "
            "and the body together, however slowly the bytes arrive); past it the module is "
            "an error in module_errors, not remembered.",
        )
        max_sym_line_length = Option(
            default="1mb",
            parser=parse_data_size,
            doc="Longest line accepted in a sym file, checked while it downloads; a file "
            "with a longer line (or none at all) is malformed. Bounds the memory a single "
            "line can cost a worker.",
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
        symbol_formats = Option(
            default="sym,sym.gz,dbg.gz,debug,pd_,dsym",
            parser=parse_symbol_formats,
            doc="The forms of a module's symbols symbolication looks for, in this order, "
            "each on every symbol server before the next form: ``sym`` "
            "(``xul.sym``), ``sym.gz`` (``xul.sym.gz``), ``dbg.gz`` (a gzipped ELF debug "
            "file, ``libxul.so.dbg.gz``), ``debug`` (the debug file itself: ``libxul.so``, "
            "``xul.pdb``, a Mach-O binary), ``pd_`` (a CAB-compressed PDB, ``xul.pd_``) and "
            "``dsym`` (a tarred dSYM bundle, ``XUL.dSYM.tar.bz2``). ``pd_`` is tried for "
            "``.pdb`` modules only, ``dbg.gz`` and ``dsym`` for the others. Each form costs "
            "one request per server for a module no server has (a HEAD for every form but "
            "``sym``, so servers count only sym files as missing); ``sym`` alone is Mozilla "
            "Eliot's behaviour. POST /minidump always uses ``sym`` files.",
        )
        symbol_protocols = Option(
            default="symsrv,debuginfod",
            parser=parse_symbol_protocols,
            doc="After every form of ``ELIOT_SYMBOL_FORMATS``, the symbol-server protocols "
            "asked for a debug file of the module by its identity, in this order, each on "
            "every symbol server, at paths relative to its URL (the symbols service answers "
            "them from its identity index, whatever the debug file was uploaded as): "
            "``symsrv`` (``symsrv/xul.pdb/<DEBUG_ID>/xul.pdb``, ``.pdb`` modules), "
            "``debuginfod`` (``buildid/<code id>/debuginfo``, then ``executable``: modules "
            "sent with a code id, the ELF build id) and ``ssqp`` (``ssqp/_.debug/"
            "elf-buildid-sym-<code id>/_.debug``, ``ssqp/_.dwarf/mach-uuid-sym-<uuid>/"
            "_.dwarf``: the other modules). Each path costs a HEAD per server for a module no "
            "server has; ``none``: none (Mozilla Eliot's behaviour, with ``sym`` alone). "
            "POST /minidump does not use them.",
        )
        max_debug_file_size = Option(
            default="1gb",
            parser=parse_data_size,
            doc="Largest symbol file in any form but ``sym`` that is downloaded, and "
            "largest file unpacking one may write (a gzip, CAB or tar member); bigger ones "
            "count as malformed. Symcache building reads the whole debug file (memory-"
            "mapped), so this also bounds its time and memory.",
        )


class StoreConfig:
    """Options of ``store.SymcacheStore`` (the per-worker side of the cache)."""

    class Config:
        fetch_threads = Option(
            default="4",
            parser=int,
            doc="Cold modules of one request are fetched in parallel by up to this many "
            "threads per worker.",
        )
        open_symcaches = Option(
            default="4096",
            parser=int,
            doc="Most memory-mapped symcaches a worker keeps open (LRU); a bound on "
            "mappings and file handles. What a worker keeps is sized by "
            "ELIOT_OPEN_SYMCACHES_MAX_SIZE.",
        )
        open_symcaches_max_size = Option(
            default="2gb",
            parser=parse_data_size,
            doc="Most bytes the symcaches a worker keeps open may hold together: their "
            "memory mappings (page cache shared by the workers) and the lookups memoised "
            "for each (real stacks repeat addresses). Past it the least recently used are "
            "let go (LRU). Set it so the modules of a typical request fit: a crash report "
            "lists 100 to 300 modules.",
        )
        touch_interval = Option(
            default="60",
            parser=float,
            doc="Seconds between a worker marking an open symcache as used on disk "
            "(what the cache manager's LRU order is based on).",
        )
        lock_timeout = Option(
            default="60",
            parser=float,
            doc="Most seconds a worker waits for another process fetching the same module "
            "(and never past the request's fetch deadline); then that module is an error "
            'in module_errors ("another worker is still fetching it").',
        )
        fetch_deadline = Option(
            default="60",
            parser=float,
            doc="Most seconds one request spends getting its cold modules (downloads, "
            "waits for other workers, parsing that has not started); modules not ready by "
            "then are reported in module_errors and the request is answered.",
        )
        shared_cache_url = Option(
            default="",
            doc="A storage URL (s3://, gs:// or file://) of a symcache tier shared by every "
            "eliot node: a node that misses on its disk asks it before downloading and "
            "parsing the sym file, and a node that builds a symcache adds it (in the "
            "background). Empty: no shared tier.",
        )
        shared_cache_queue = Option(
            default="16",
            parser=int,
            doc="Most symcaches waiting to be added to the shared tier; more are dropped "
            "(counted as eliot.shared_tier.publish result:dropped).",
        )


class CacheConfig:
    """Options of ``diskcache.DiskCache``, shared by the web app and the cache
    manager."""

    class Config:
        symbols_cache_dir = Option(
            default="/tmp/cache",
            doc="Root of the symcache disk cache shared by the web workers and the cache manager.",
        )
        symbols_cache_max_size = Option(
            default="1gb",
            parser=parse_data_size,
            doc="Most bytes the disk cache may hold (decimal units: 1gb = 1,000,000,000). "
            "The cache manager evicts least-recently-used entries to stay under it, and a "
            "web worker evicts before a write that would go over it.",
        )
        missing_symbols_ttl = Option(
            default="1h",
            parser=parse_time_period,
            doc="How long a module every symbol server answered 404 for is remembered as "
            "missing (no download is tried meanwhile, but see "
            "ELIOT_MISSING_SYMBOLS_RECHECK). 0 turns it off.",
        )
        missing_symbols_recheck = Option(
            default="10s",
            parser=parse_time_period,
            doc="A module remembered as missing is rechecked on the symbol servers (a "
            "HEAD request per server and symbol format, not logged as a missing symbol "
            "there) when it is requested and its last check is at least this old, at most "
            "once per this period per module and host; if a server has it now, it is "
            "downloaded at once. So a module uploaded after a miss is symbolicated by the "
            "first request this long after the upload, not after ELIOT_MISSING_SYMBOLS_TTL. "
            "POST /minidump rechecks its missing sym files the same way. 0 turns rechecks off.",
        )
        malformed_symbols_ttl = Option(
            default="24h",
            parser=parse_time_period,
            doc="How long a module whose sym file could not be used (bad syntax, wrong "
            "debug id, too large) is remembered as malformed. 0 turns it off.",
        )
        shared_negative_cache_url = Option(
            default="",
            doc="A Redis URL (``redis://host:port/db``) through which every eliot node shares "
            "its negative results (missing and malformed modules) with their TTLs: a "
            "module one node found missing is not downloaded again by another until the "
            "entry expires. Empty: each node remembers its own. Redis errors are logged "
            "and ignored (the node then decides alone).",
        )
        shared_negative_cache_prefix = Option(
            default="eliot:negative:",
            doc="Prefix of the shared negative entries' Redis keys.",
        )
        verify_cache_checksums = Option(
            default="true",
            parser=parse_bool,
            doc="Check each cache file's CRC-32 when a worker opens it (once per worker "
            "and file); corrupt files are deleted and rebuilt.",
        )


class CacheManagerConfig:
    """Options of the cache manager process (``cache_manager.CacheManager``)."""

    class Config:
        cache_manager_heartbeat_interval = Option(
            default="5",
            parser=float,
            doc="Seconds between two heartbeats of the cache manager (the file "
            "cache-manager.json in the cache directory).",
        )
        cache_manager_rescan_interval = Option(
            default="600",
            parser=float,
            doc="Seconds between two full rescans of the cache tree by the cache manager "
            "(a safety net for missed events).",
        )


class StackwalkerConfig:
    """Options of ``POST /minidump`` (read in ``stackwalk.Stackwalker.from_config``)."""

    class Config:
        stackwalker_path = Option(
            default="",
            doc="The stackwalker binary (rust-minidump's minidump-stackwalk) for POST "
            "/minidump: a path, or a name looked up on PATH. Empty (the default): "
            "/minidump is off and answers 503. When it is set but missing or not the "
            "expected version, eliot logs an error at start-up, /__heartbeat__ fails and "
            "/minidump answers 503; the rest of eliot works.",
        )
        stackwalker_version = Option(
            default="minidump-stackwalk 0.25.0",
            doc="What `<stackwalker> --version` must print (its JSON output is what "
            "/minidump returns). Empty: any version.",
        )
        stackwalk_timeout = Option(
            default="60",
            parser=float,
            doc="Seconds one walk may take (symbol fetching excluded); a walk killed at "
            "this limit answers 504.",
        )
        stackwalk_memory_limit = Option(
            default="2gb",
            parser=parse_data_size,
            doc="Address-space limit (RLIMIT_AS) of one stackwalker process; a walk that "
            "runs out answers 422.",
        )
        stackwalk_concurrency = Option(
            default="2",
            parser=int,
            doc="Walks one web worker runs at once; more requests wait for a slot.",
        )
        max_minidump_size = Option(
            default="100mb",
            parser=parse_data_size,
            doc="Largest request body POST /minidump accepts (the minidump and its "
            "annotations); bigger ones are a 413.",
        )
        stackwalk_symbols_dir = Option(
            default="",
            doc="Root of the on-disk Breakpad symbol tree the stackwalker reads, shared by "
            "every worker. Empty: <ELIOT_SYMBOLS_CACHE_DIR>/breakpad.",
        )
        stackwalk_symbols_max_size = Option(
            default="1gb",
            parser=parse_data_size,
            doc="Most bytes of symbol files the stackwalker's tree may hold; the least "
            "recently used files are deleted past it.",
        )
        stackwalk_fetch_threads = Option(
            default="8",
            parser=int,
            doc="Symbol files of one minidump fetched in parallel.",
        )


#: What each process reads (and logs at start-up).
WEBAPP_OPTIONS = [
    ProcessConfig,
    WebAppConfig,
    DownloaderConfig,
    StoreConfig,
    CacheConfig,
    StackwalkerConfig,
]
CACHE_MANAGER_OPTIONS = [ProcessConfig, CacheConfig, CacheManagerConfig]


def count_scrub_error(process: str) -> Callable[[], None]:
    """The ``on_scrub_error`` callback of one process for
    :func:`tecken_shared.sentry.setup_sentry`: a scrubber that raises drops
    the event, and this counts ``eliot.sentry_scrub_error`` with tag
    ``service:<process>``."""

    def on_scrub_error() -> None:
        metrics.incr("sentry_scrub_error", tags=[f"service:{process}"])

    return on_scrub_error


def setup_eliot_process(manager: ConfigManager, process: str) -> dict[str, Any]:
    """Logging, metrics and Sentry for one of Eliot's processes: ``webapp`` or
    ``cachemanager`` (the tag Sentry scrub errors carry). Returns the
    :class:`ProcessConfig` options it read."""
    options = read_options(manager, ProcessConfig)
    release = release_name(options["version_file"], PACKAGE)
    setup_service(
        "eliot",
        manager,
        NAMESPACE,
        METRICS_YAML,
        release,
        common_options=EliotCommonConfig,
        on_scrub_error=count_scrub_error(process),
    )
    return options
