# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every option of the symbols service, read with the ``symbols`` namespace
(environment variables ``SYMBOLS_<OPTION>``), plus the service's namespace and
metrics registry. Each option is declared once, default included; components
read the class they need (``manager.with_namespace(NAMESPACE).with_options(X)``,
or :meth:`tecken_symbols.upload.config.UploadSettings.from_config`)."""

from __future__ import annotations

from pathlib import Path

from everett.manager import ListOf, Option, parse_bool, parse_data_size

NAMESPACE = "symbols"
METRICS_YAML = Path(__file__).parent / "metrics.yaml"

DEFAULT_DOWNLOAD_DOMAINS = (
    "queue.taskcluster.net,firefox-ci-tc.services.mozilla.com,"
    "stage.taskcluster.nonprod.cloudops.mozgcp.net,"
    "tecken-system-tests.symbols.nonprod.webservices.mozgcp.net"
)


def positive_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{value!r} must not be negative")
    return number


def parse_mime_overrides(value: str) -> dict[str, str]:
    """``sym=text/plain,foo=application/x-foo`` -> ``{"sym": "text/plain", ...}``."""
    result = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        ext, sep, mime = item.partition("=")
        if not sep or not ext.strip() or not mime.strip():
            raise ValueError(f"expected extension=mime/type, got {item!r}")
        result[ext.strip().lower().lstrip(".")] = mime.strip()
    return result


def parse_extensions(value: str) -> tuple[str, ...]:
    """``sym, .DLL`` -> ``("sym", "dll")``."""
    return tuple(e.strip().lower().lstrip(".") for e in value.split(",") if e.strip())


def parse_hosts(value: str) -> tuple[str, ...]:
    """Comma-separated host names, lower-cased."""
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def parse_snippets(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_v2_protocol(value: str) -> str:
    value = value.strip().lower()
    if value not in ("auto", "tecken-put"):
        raise ValueError(f"{value!r}: must be auto or tecken-put")
    return value


def gzip_level(value: str) -> int:
    level = int(value)
    if not 1 <= level <= 9:
        raise ValueError(f"the gzip level must be 1-9, not {level}")
    return level


class AppConfig:
    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )


class DeploymentConfig:
    class Config:
        nodes = Option(
            default="1",
            parser=int,
            doc="How many machines run this service against the same database, cache and "
            "storage. Above 1 the service refuses to start with state that one machine "
            "keeps to itself: a SQLite database, a ``memory://`` cache, or ``file://`` "
            "storage that is not one shared mount (see SYMBOLS_FILESYSTEM_SHARED). "
            "docs/operations.rst lists what a multi-node deployment changes.",
        )
        filesystem_shared = Option(
            default="false",
            parser=parse_bool,
            doc="The ``file://`` storages are one mount every node sees (NFS, a cluster "
            "file system), so several nodes may use them.",
        )


class DatabaseConfig:
    class Config:
        database_url = Option(
            default="sqlite:///./var/symbols/symbols.db",
            doc="Database URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` "
            "(embedded default) or ``postgresql://user:password@host:port/dbname`` (production).",
        )
        database_automigrate = Option(
            default="true",
            parser=parse_bool,
            doc="Apply pending schema migrations when the app starts (safe with several "
            "workers: they take a lock). Set to false when a deploy step runs "
            "``tecken-symbols-admin migrate`` instead.",
        )
        database_connect_timeout = Option(
            default="5",
            parser=positive_float,
            doc="Seconds to wait for a PostgreSQL connection (a new one, or a free one "
            "of the pool).",
        )
        database_pool_size = Option(
            default="20",
            parser=int,
            doc="Most PostgreSQL connections each worker process keeps in its pool "
            "(psycopg_pool; one is opened at start). A connection found dropped is "
            "replaced and the statement tried once more.",
        )


class StorageConfig:
    class Config:
        storage_url = Option(
            default="file://./var/symbols/storage/v1",
            doc="Regular symbol storage (upload target, first download backend): "
            "``file:///path`` or ``s3://bucket/prefix?endpoint_url=...`` "
            "(see the storage URL parameters in the docs).",
        )
        try_storage_url = Option(
            default="file://./var/symbols/storage/try/v1",
            doc="Try symbol storage (upload target for try builds; searched after the "
            "regular storage for /try/ and ?try downloads).",
        )
        extra_storage_urls = Option(
            default="",
            parser=ListOf(str),
            doc="Comma-separated extra read-only storage URLs searched after regular "
            "(and try) storage for downloads, e.g. a legacy bucket.",
        )
        public_url = Option(
            default="http://localhost:3000",
            doc="Public base URL of this service. Filesystem storages without a "
            "``public_url`` parameter are served by the service itself under "
            "``<public_url>/files/<regular|try|extraN>/<key>``, and downloads redirect there.",
        )


class CacheConfig:
    class Config:
        cache_url = Option(
            default="memory://",
            doc="Existence-lookup cache: ``memory://`` (in-process LRU, per worker) or "
            "``redis://host:port/db`` (shared; every Redis error is logged and ignored).",
        )
        cache_prefix = Option(default="symbols:", doc="Prefix of every cache key in Redis.")
        cache_positive_ttl = Option(
            default="3600",
            parser=positive_float,
            doc="Seconds a found symbol stays cached (uploads invalidate it).",
        )
        cache_negative_ttl = Option(
            default="30",
            parser=positive_float,
            doc="Seconds a missing symbol stays cached. Uploads invalidate it. With "
            "``memory://`` (per worker) misses are only cached for remote (S3) storage.",
        )
        cache_redis_timeout = Option(
            default="0.25",
            parser=positive_float,
            doc="Redis connect and socket timeout in seconds.",
        )
        cache_redis_retry_after = Option(
            default="5",
            parser=positive_float,
            doc="After a Redis error, seconds to work without Redis before trying again.",
        )
        cache_local_hit_ttl = Option(
            default="60",
            parser=positive_float,
            doc="With Redis: seconds each worker also keeps a found symbol in memory, "
            "saving a Redis round trip per download (0 turns it off). Deletions reach "
            "this layer through the invalidation log (see "
            "SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL). Missing symbols are never kept "
            "per worker.",
        )
        cache_max_entries = Option(
            default="100000",
            parser=int,
            doc="Entries kept by the in-process cache.",
        )
        cache_invalidation_poll_interval = Option(
            default="1",
            parser=positive_float,
            doc="Seconds between a worker's reads of the cache invalidation log (a "
            "database table the symbol writer appends to). This is the bound: every "
            "answer a worker gives this long after an upload or a deletion committed "
            "reflects it, in every worker on every node, with ``memory://`` and Redis "
            "alike. 0 reads the log before every cached answer.",
        )
        syminfo_cache_ttl = Option(
            default="600",
            parser=positive_float,
            doc="Seconds a found code-file/code-id (syminfo) lookup stays cached.",
        )
        syminfo_negative_ttl = Option(
            default="60",
            parser=positive_float,
            doc="Seconds a failed code-file/code-id lookup stays cached in Redis (uploads "
            "invalidate it; never cached with ``memory://``).",
        )


class DownloadConfig:
    class Config:
        download_file_extensions_allowed = Option(
            default=".sym,.dl_,.ex_,.pd_,.dbg.gz,.tar.bz2",
            parser=ListOf(str),
            doc="Symbol file name endings that downloads look up (case-sensitive); other "
            "requests get 404 ``Symbol Not Found (and ignored)`` without a lookup.",
        )
        download_security_headers = Option(
            default="true",
            parser=parse_bool,
            doc="Send X-Content-Type-Options, X-Frame-Options, Strict-Transport-Security "
            "and a Content-Security-Policy on download answers (and /files/), as Tecken's "
            "nginx does; turn off only when a proxy in front adds them.",
        )
        download_ask_storage_for_unknown_keys = Option(
            default="false",
            parser=parse_bool,
            doc="Whether a download of a key no upload stored asks storage anyway. "
            "``false`` (the default): the database is authoritative; each worker keeps a "
            "filter of the stored keys (the ``stored_keys`` table, loaded at start and "
            "kept current through the invalidation log), and a key outside it is answered "
            "404 without a cache or storage request. Set ``true`` while a storage holds "
            "objects the service never recorded (a migrated bucket, objects copied in by "
            "other tools, ``SYMBOLS_EXTRA_STORAGE_URLS``), or record them once with "
            "``tecken-symbols-admin import-keys`` and keep ``false``.",
        )
        missing_symbols_enabled = Option(
            default="true",
            parser=parse_bool,
            doc="Record GET downloads answered 404 (for /missingsymbols.csv).",
        )
        missing_symbols_flush_interval = Option(
            default="10",
            parser=positive_float,
            doc="Seconds between writes of the buffered missing-symbol counts to the database.",
        )
        missing_symbols_max_buffer = Option(
            default="10000",
            parser=int,
            doc="Distinct missing symbols buffered per worker between writes; more are dropped "
            "(and counted in a metric).",
        )
        missing_symbols_max_rows = Option(
            default="1000000",
            parser=int,
            doc="Most rows the missing-symbol table holds: once full, symbols already "
            "there are still counted, new ones are dropped (metric "
            "``missing_symbols.capped``) until retention frees room. 0 means no cap.",
        )
        missing_symbols_retention_days = Option(
            default="30",
            parser=positive_float,
            doc="Missing symbols not asked for in this many days are deleted (by each "
            "worker at most once an hour, and by ``cleanup-uploads``). 0 keeps them "
            "forever. ``/missingsymbols.csv`` lists the last one or two days only.",
        )
        download_counts_enabled = Option(
            default="true",
            parser=parse_bool,
            doc="Count downloads found and missing per UTC day (the Stats page's chart): "
            "in memory per worker, written to the database in batches.",
        )
        download_counts_flush_interval = Option(
            default="30",
            parser=positive_float,
            doc="Seconds between writes of a worker's buffered download counts to the "
            "database (one upsert per day).",
        )


class UploadConfig:
    class Config:
        upload_tempdir = Option(
            default="",
            doc="Directory for uploaded archives while they are processed (one temporary "
            "file per upload, removed afterwards); empty means the system temp directory.",
        )
        upload_max_size = Option(
            default="2gb",
            parser=parse_data_size,
            doc="Largest accepted archive (request body or downloaded file); larger ones "
            "get 413. Accepts sizes like 2gb, 500mb.",
        )
        upload_max_extracted_size = Option(
            default="20gb",
            parser=parse_data_size,
            doc="Largest total uncompressed size of an archive's members (zip-bomb guard).",
        )
        upload_max_files = Option(
            default="50000",
            parser=int,
            doc="Most members an archive may hold.",
        )
        upload_validate_content = Option(
            default="true",
            parser=parse_bool,
            doc="Check every .sym member before storing anything: text starting with a "
            "MODULE line whose debug id and debug filename match the member's path, and "
            "no STACK record before a FUNC record (symbolication would silently lose "
            "those functions). false gives Tecken's behaviour (no content checks).",
        )
        upload_file_upload_max_workers = Option(
            default="0",
            parser=int,
            doc="Threads that compress and store members in parallel (and that verify the "
            "files of a v2 completion call); 0 means the CPU count.",
        )
        upload_gzip_level = Option(
            default="6",
            parser=gzip_level,
            doc="gzip level (1-9) for compressed extensions.",
        )
        upload_spool_size = Option(
            default="8mb",
            parser=parse_data_size,
            doc="Compressed output up to this size is kept in memory per worker; "
            "bigger output spills to a temporary file (bounds memory per worker).",
        )
        identity_max_size = Option(
            default="256mb",
            parser=parse_data_size,
            doc="Largest object parsed for the identity index (symsrv, SSQP and debuginfod "
            "keys) when it is stored, and largest object expanded (CAB, gzip, tar member) "
            "into a derived object when such a key is asked for. Parsing holds the file "
            "and its expanded form in memory: up to about 3x this per upload worker. "
            "Bigger Windows objects still get the symsrv keys their Tecken key names; "
            "bigger ELF and Mach-O files get no keys.",
        )
        compress_extensions = Option(
            default="sym",
            parser=parse_extensions,
            doc="Extensions stored gzipped with Content-Encoding: gzip.",
        )
        mime_overrides = Option(
            default="sym=text/plain",
            parser=parse_mime_overrides,
            doc="Content types by extension, as ext=type pairs separated by commas.",
        )
        disallowed_symbols_snippets = Option(
            default="qcom/proprietary",
            parser=parse_snippets,
            doc="Member names containing any of these snippets are refused.",
        )
        allow_upload_by_any_domain = Option(
            default="false",
            parser=parse_bool,
            doc="Upload by download URL from any host and over plain http "
            "(local development only).",
        )
        allow_upload_by_download_domains = Option(
            default=DEFAULT_DOWNLOAD_DOMAINS,
            parser=parse_hosts,
            doc="Hosts (exact, without port) upload-by-download URLs and every redirect "
            "they lead through may point at.",
        )
        upload_by_download_require_https = Option(
            default="true",
            parser=parse_bool,
            doc="Refuse http:// download URLs and redirects (unless "
            "SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN is on).",
        )
        upload_by_download_allow_private_addresses = Option(
            default="false",
            parser=parse_bool,
            doc="Allow upload-by-download hosts that resolve to loopback, private or "
            "link-local addresses (local development and tests only; in production an "
            "allowed name pointing inside the network is refused).",
        )
        upload_download_deadline = Option(
            default="600",
            parser=positive_float,
            doc="Seconds one upload by download URL may take in all (HEAD requests, "
            "retries with their back-off, redirects and the download); past it the "
            "upload is answered 502 so the client retries later. 0 means no deadline.",
        )
        upload_download_connect_timeout = Option(
            default="5", parser=float, doc="Seconds to connect for upload by download URL."
        )
        upload_download_read_timeout = Option(
            default="300", parser=float, doc="Seconds between bytes for upload by download URL."
        )
        upload_download_retries = Option(
            default="5",
            parser=int,
            doc="Retries of an upload-by-download request after a connection error, a "
            "timeout or a 429/5xx answer.",
        )
        upload_download_backoff = Option(
            default="0.2",
            parser=positive_float,
            doc="Base of the exponential back-off between those retries, in seconds.",
        )
        upload_download_max_redirects = Option(
            default="5",
            parser=int,
            doc="Most redirects an upload-by-download URL may lead through.",
        )
        upload_v2_max_files_per_request = Option(
            default="1024", parser=int, doc="Most files in one POST /upload/v2/ request."
        )
        upload_v2_protocol = Option(
            default="auto",
            parser=parse_v2_protocol,
            doc="How v2 clients send a file's bytes: ``auto`` straight to the storage, "
            "with the protocol the upload backend names (``gcs-resumable`` on GCS, "
            "``s3-presigned-put`` on S3, ``tecken-put`` on the filesystem); "
            "``tecken-put`` always through this service.",
        )
        upload_v2_url_expires = Option(
            default="3600",
            parser=int,
            doc="Seconds a presigned S3 PUT URL of a v2 upload stays valid (GCS upload "
            "sessions last a week whatever this says).",
        )
        upload_try_retention_days = Option(
            default="30",
            parser=int,
            doc="The cleanup command deletes try uploads (records and stored try objects "
            "they wrote) older than this many days.",
        )
        upload_regular_retention_days = Option(
            default="730",
            parser=int,
            doc="The cleanup command deletes regular upload records (not the symbols) "
            "older than this many days; 0 keeps them forever.",
        )


class PeopleConfig:
    """Logins, sessions and the web pages (issue 12)."""

    class Config:
        session_idle_lifetime = Option(
            default="28800",
            parser=positive_float,
            doc="Seconds a browser session lasts without a request (then the person logs in again).",
        )
        session_absolute_lifetime = Option(
            default="1209600",
            parser=positive_float,
            doc="Seconds a browser session lasts at most, however busy (default 14 days).",
        )
        session_cookie_secure = Option(
            default="true",
            parser=parse_bool,
            doc="Send the session cookie with ``Secure`` (HTTPS only). Only local "
            "development over plain HTTP sets this to false.",
        )
        oidc_issuer = Option(
            default="",
            doc="OpenID Connect issuer URL (its ``/.well-known/openid-configuration`` is read); "
            "empty: no OpenID Connect login, local accounts only.",
        )
        oidc_client_id = Option(default="", doc="OpenID Connect client id.")
        oidc_client_secret = Option(
            default="", doc="OpenID Connect client secret (empty for a public client using PKCE)."
        )
        oidc_scopes = Option(
            default="openid email profile offline_access",
            doc="Scopes asked for at login. ``offline_access`` gives a refresh token, "
            "which periodic re-validation uses.",
        )
        oidc_allowed_email_domains = Option(
            default="",
            parser=ListOf(str),
            doc="Comma-separated email domains allowed to log in with OpenID Connect; empty: any.",
        )
        oidc_provider_name = Option(
            default="single sign-on", doc="Name of the identity provider on the login page."
        )
        oidc_revalidate_interval = Option(
            default="86400",
            parser=positive_float,
            doc="Seconds between re-validations of an OpenID Connect user with the provider. "
            "A user the provider refuses becomes inactive and their tokens stop at once.",
        )
        oidc_timeout = Option(
            default="10", parser=positive_float, doc="Seconds to wait for the identity provider."
        )
        login_max_attempts = Option(
            default="10",
            parser=int,
            doc="Failed password logins allowed per email and per client address in "
            "``login_attempt_window`` seconds; more are refused with 429.",
        )
        login_attempt_window = Option(
            default="900",
            parser=positive_float,
            doc="Seconds over which failed password logins are counted.",
        )
        invitation_lifetime = Option(
            default="604800",
            parser=positive_float,
            doc="Seconds an invitation link stays valid (default 7 days).",
        )
        eliot_url = Option(
            default="http://localhost:8050",
            doc="Base URL of the eliot symbolication service used by the Symbolication page.",
        )


#: Every option class of the service (logged at start-up, documented in docs/).
CONFIG_COMPONENTS = (
    AppConfig,
    DeploymentConfig,
    DatabaseConfig,
    StorageConfig,
    CacheConfig,
    DownloadConfig,
    UploadConfig,
    PeopleConfig,
)
