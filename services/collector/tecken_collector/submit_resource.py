# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``POST /submit``: the Breakpad/Crashpad crash submission endpoint.

Answers, byte for byte as crash reporters expect (``text/plain``):

* ``200 CrashID=bp-<crash id>\\n`` once the crash is durably stored (or
  fake-accepted by the throttler);
* ``200 Discarded=rule_<rule>`` when the throttler rejects it;
* ``400 Discarded=malformed_<reason>`` for unusable submissions
  (``413`` for ``payload_too_large`` and ``decompressed_too_large``);
* ``401 Discarded=unauthorized_uuid`` for a client-supplied crash id without
  the stage submitter's token;
* ``500`` with an empty body when the crash cannot be stored anywhere, so
  the client keeps it and retries later."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon
import markus

from tecken_collector import throttler as thr
from tecken_collector.crashid import create_crash_id, is_valid_crash_id
from tecken_collector.crashstorage import CrashSaveError, FSCrashStorage
from tecken_collector.payload import (
    MalformedCrash,
    ParsedCrash,
    PayloadLimits,
    check_headers,
    parse_crash,
)

logger = logging.getLogger("tecken_collector.submit_resource")
metrics = markus.get_metrics("collector.breakpad_resource")
mover_metrics = markus.get_metrics("collector.crashmover")

REMOVED_FIELDS = ("Email", "TelemetryClientId", "TelemetryServerURL", "TelemetrySessionId")

RESULT_TAGS = {
    thr.ACCEPT: "accept",
    thr.DEFER: "defer",
    thr.REJECT: "reject",
    thr.FAKEACCEPT: "fakeaccept",
}


def count_fsync_round(size: int) -> None:
    """Metric: requests served by one shared fsync round (group commit)."""
    mover_metrics.histogram("fsync_round_size", value=size)


def text_response(resp: falcon.Response, status: str, body: str) -> None:
    resp.status = status
    resp.content_type = "text/plain"
    resp.text = body


class BreakpadSubmitterResource:
    def __init__(
        self,
        *,
        throttler: thr.Throttler,
        storage: FSCrashStorage,
        limits: PayloadLimits,
        stage_token: str = "",
        after_save: Callable[[str, Path], None] | None = None,
    ) -> None:
        self.throttler = throttler
        self.storage = storage
        self.limits = limits
        self.stage_token = stage_token
        self.after_save = after_save

    def _malformed(self, resp: falcon.Response, exc: MalformedCrash) -> None:
        metrics.incr("malformed", tags=[f"reason:{exc.reason}"])
        text_response(resp, exc.status, f"Discarded=malformed_{exc.reason}")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("on_post.time"):
            self._handle(req, resp)

    def _handle(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            boundary, length = check_headers(req, self.limits)
            self._set_read_timeout(req)
            crash = parse_crash(req, self.limits, boundary=boundary, content_length=length)
        except TimeoutError:
            # The client sent less than its Content-Length and went quiet.
            metrics.incr("malformed", tags=["reason:read_timeout"])
            logger.info("submission body not received within %ss: 408", self.limits.read_timeout)
            text_response(resp, falcon.HTTP_408, "Discarded=malformed_read_timeout")
            return
        except MalformedCrash as exc:
            if exc.reason == "bad_gzip":
                metrics.incr("gzipped_crash")
                metrics.histogram("gzipped_crash_decompress", value=0, tags=["result:fail"])
            self._malformed(resp, exc)
            return
        try:
            self._accept(req, resp, crash)
        finally:
            crash.close()

    def _accept(self, req: falcon.Request, resp: falcon.Response, crash: ParsedCrash) -> None:
        if crash.payload_compressed:
            metrics.incr("gzipped_crash")
            metrics.histogram(
                "gzipped_crash_decompress", value=crash.gzip_ms or 0.0, tags=["result:success"]
            )
            metrics.histogram(
                "crash_size", value=crash.decompressed_size or 0, tags=["payload:compressed"]
            )
        else:
            metrics.histogram("crash_size", value=crash.payload_size, tags=["payload:uncompressed"])
        metrics.incr("incoming_crash")

        now = datetime.now(UTC)
        raw_crash: dict[str, Any] = dict(crash.annotations)
        notes = list(crash.notes)
        raw_crash["metadata"] = {
            "payload": crash.payload,
            "payload_compressed": "1" if crash.payload_compressed else "0",
            "payload_size": crash.payload_size,
            "collector_notes": notes,
            "dump_checksums": {name: dump.sha256 for name, dump in crash.dumps.items()},
            "user_agent": req.get_header("User-Agent") or "None",
        }
        raw_crash["submitted_timestamp"] = now.isoformat()

        result, rule, _percent = self.throttler.throttle(crash.annotations)
        metrics.incr("throttle_rule", tags=[f"rule:{rule}"])
        metrics.incr("throttle", tags=[f"result:{RESULT_TAGS.get(result, 'reject')}"])

        if result == thr.REJECT:
            logger.info(
                "rejected crash: matched by %s; returned %s", rule, thr.RESULT_NAMES[result]
            )
            text_response(resp, falcon.HTTP_200, f"Discarded=rule_{rule}")
            return

        if "uuid" in crash.annotations:
            if not self._authorized(req):
                metrics.incr("unauthorized_uuid")
                logger.info("crash with a client-supplied uuid and no valid token: 401")
                text_response(resp, falcon.HTTP_401, "Discarded=unauthorized_uuid")
                return
            crash_id = str(crash.annotations["uuid"])
            if not is_valid_crash_id(crash_id, strict=True):
                self._malformed(resp, MalformedCrash("invalid_uuid"))
                return
        else:
            crash_id = create_crash_id(1 if result == thr.DEFER else 0, now)

        logger.info("%s: matched by %s; returned %s", crash_id, rule, thr.RESULT_NAMES[result])
        if result == thr.FAKEACCEPT:
            text_response(resp, falcon.HTTP_200, f"CrashID=bp-{crash_id}\n")
            return

        raw_crash["uuid"] = crash_id
        raw_crash["version"] = 2
        raw_crash["metadata"]["throttle_rule"] = rule
        for name in REMOVED_FIELDS:
            if name in raw_crash:
                del raw_crash[name]
                notes.append(f"Removed {name} from raw crash.")

        start = time.perf_counter()
        try:
            with mover_metrics.timer("crash_save.time"):
                root = self.storage.save(crash_id, raw_crash, crash.dumps)
        except CrashSaveError as exc:
            logger.error("%s: dropped, could not be saved: %s", crash_id, exc)
            mover_metrics.incr("save_crash_dropped.count")
            resp.status = falcon.HTTP_500
            resp.content_type = "text/plain"
            resp.text = ""
            return
        mover_metrics.incr("save_crash.count")
        if root != self.storage.roots[0]:
            mover_metrics.incr("save_crash_fallback.count")
        logger.info("%s saved", crash_id)
        if self.after_save is not None:
            # The crash is stored: nothing after this point may fail the answer
            # (a retrying client would submit it twice).
            try:
                self.after_save(crash_id, root)
            except Exception:
                logger.exception("%s: post-save step failed; left to the crashmover", crash_id)
        mover_metrics.timing("crash_handling.time", (time.perf_counter() - start) * 1000)
        text_response(resp, falcon.HTTP_200, f"CrashID=bp-{crash_id}\n")

    def _set_read_timeout(self, req: falcon.Request) -> None:
        """Bound the wait for each read of the body (gunicorn exposes the socket;
        other servers have their own timeouts)."""
        sock = req.env.get("gunicorn.socket")
        if self.limits.read_timeout and sock is not None:
            try:
                sock.settimeout(self.limits.read_timeout)
            except OSError:
                pass

    def _authorized(self, req: falcon.Request) -> bool:
        if not self.stage_token:
            return False
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), self.stage_token.encode())
