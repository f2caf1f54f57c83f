# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Processing a stored crash through eliot's ``POST /minidump``, so a
self-hosting team sees stacks without running Socorro.

The processed crash is written beside the raw crash, as
``<root>/<date>/processed_crash/<crash id>.json``, and (by the crashmover)
to the object store as ``v1/processed_crash/<crash id>``. Its shape follows
Socorro's processed crash where it overlaps: ``uuid``, ``json_dump`` (the
stackwalker's output), ``processor_notes``, plus the annotations Socorro
copies (``product``, ``version``, ``release_channel``), the crashing
thread's top frame as ``crashing_function`` and ``started_datetime`` /
``completed_datetime``.

``tecken-process-crash <crash id>`` does the same for one crash.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from pathlib import Path
from typing import Any

import markus
import requests

from tecken_collector.crashstorage import CrashPaths, load_crash
from tecken_collector.publish import MAIN_DUMP as MAIN_DUMP_NAME
from tecken_shared.storage.filesystem import write_atomic

logger = logging.getLogger("tecken_collector.processor")
metrics = markus.get_metrics("collector.processor")

USER_AGENT = "tecken-collector-processor/1.0"


class ProcessingFailed(RuntimeError):
    """eliot could not be reached or failed (5xx): try again later."""


def processed_path(root: Path, crash_id: str) -> Path:
    paths = CrashPaths(root, crash_id)
    return paths.day / "processed_crash" / f"{crash_id}.json"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _crashing_function(json_dump: dict[str, Any]) -> str | None:
    try:
        thread = json_dump["threads"][json_dump["crash_info"]["crashing_thread"]]
        frame = thread["frames"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return frame.get("function") or None


class CrashProcessor:
    """Posts a stored crash's minidump (and its annotations) to ``<url>/minidump``."""

    def __init__(self, url: str, timeout: float = 120) -> None:
        self.url = url.rstrip("/") + "/minidump"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def processed(self, root: Path, crash_id: str) -> dict[str, Any]:
        """The processed crash of ``crash_id`` under ``root``. Raises
        ProcessingFailed when eliot is down or failed, FileNotFoundError and
        ValueError for a damaged local crash."""
        started = _now()
        crash = load_crash(root, crash_id)
        raw = json.loads(crash.raw_crash)
        result: dict[str, Any] = {
            "uuid": crash_id,
            "product": raw.get("ProductName"),
            "version": raw.get("Version"),
            "release_channel": raw.get("ReleaseChannel"),
            "started_datetime": started,
            "processor_notes": [],
        }
        dump = crash.dumps.get(MAIN_DUMP_NAME)
        if dump is None:
            result["processor_notes"].append(f"no {MAIN_DUMP_NAME}: nothing to walk")
            metrics.incr("process", tags=["result:no_dump"])
        else:
            fields = {k: v for k, v in raw.items() if isinstance(v, str)}
            try:
                with open(dump, "rb") as handle:
                    resp = self.session.post(
                        self.url,
                        files={MAIN_DUMP_NAME: (f"{crash_id}.dmp", handle)},
                        data=fields,
                        timeout=self.timeout,
                    )
            except requests.RequestException as exc:
                metrics.incr("process", tags=["result:retry"])
                raise ProcessingFailed(f"{self.url}: {exc}") from exc
            if resp.status_code >= 500 or resp.status_code == 429:
                metrics.incr("process", tags=["result:retry"])
                raise ProcessingFailed(f"{self.url}: {resp.status_code} {resp.text[:200]}")
            if resp.status_code != 200:
                # The dump itself is the problem (400, 413, 422): keep the note.
                result["processor_notes"].append(
                    f"eliot /minidump answered {resp.status_code}: {resp.text[:500]}"
                )
                metrics.incr("process", tags=["result:unprocessable"])
            else:
                json_dump = resp.json()
                json_dump.pop("annotations", None)
                result["json_dump"] = json_dump
                result["crashing_function"] = _crashing_function(json_dump)
                metrics.incr("process", tags=["result:ok"])
        result["completed_datetime"] = _now()
        return result

    def process(self, root: Path, crash_id: str) -> Path:
        """Process one crash and write its processed crash beside the raw
        crash; returns the file's path (raises as :meth:`processed`)."""
        result = self.processed(root, crash_id)
        path = processed_path(root, crash_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(result, sort_keys=True).encode("utf-8"))
        logger.info("%s processed: %s", crash_id, result.get("crashing_function"))
        return path


def main(argv: list[str] | None = None) -> int:
    """``tecken-process-crash``: process one stored crash through eliot."""
    from tecken_collector.settings import StorageConfig, options, processor_settings
    from tecken_shared.config import build_config_manager

    parser = argparse.ArgumentParser(
        prog="tecken-process-crash",
        description="Walk a stored crash's minidump with eliot's POST /minidump and write "
        "<root>/<date>/processed_crash/<crash id>.json beside the raw crash.",
    )
    parser.add_argument("crash_id", help="the crash id (bp- prefix allowed)")
    parser.add_argument(
        "--url", help="eliot's base URL (default: COLLECTOR_CRASHMOVER_PROCESSOR_URL)"
    )
    parser.add_argument("--print", action="store_true", help="also print the processed crash")
    args = parser.parse_args(argv)
    manager = build_config_manager()
    url, timeout = processor_settings(manager)
    url = args.url or url
    if not url:
        parser.error("no eliot URL: pass --url or set COLLECTOR_CRASHMOVER_PROCESSOR_URL")
    crash_id = args.crash_id.removeprefix("bp-")
    config = options(manager, StorageConfig)
    roots = [Path(r) for r in (config("crashstorage_root"), config("crashstorage_fallback_root"))]
    root = next((r for r in roots if r and CrashPaths(r, crash_id).raw_crash.is_file()), None)
    if root is None:
        print(f"crash {crash_id} is not stored under {', '.join(map(str, roots))}", file=sys.stderr)
        return 1
    try:
        path = CrashProcessor(url, timeout).process(root, crash_id)
    except ProcessingFailed as exc:
        print(f"eliot failed; try again later: {exc}", file=sys.stderr)
        return 2
    print(path)
    if args.print:
        print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
