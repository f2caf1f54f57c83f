# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``POST /minidump``: a minidump in, Socorro's ``json_dump`` out.

The request is ``multipart/form-data`` as Crashpad and Symbolicator send it:
the dump in the file part ``upload_file_minidump``; any other text part is an
annotation, echoed back under ``annotations``. The answer is the
stackwalker's JSON (Socorro stores it as ``json_dump``) with extra keys:
``symbol_fetch``, what became of each module's symbol file, ``module_status``
and each frame's ``status`` (:func:`tecken_eliot.explain.explain_walk`)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import falcon
import markus
from falcon.media.multipart import MultipartParseError

from tecken_eliot.explain import explain_walk
from tecken_eliot.minidump import NotAMinidump
from tecken_eliot.stackwalk import Stackwalker, StackwalkerMissing, WalkFailed

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

DUMP_FIELD = "upload_file_minidump"


def _refuse(reason: str, error: type[falcon.HTTPError], title: str) -> falcon.HTTPError:
    metrics.incr("minidump.request_error", tags=[f"reason:{reason}"])
    return error(title=title)


class MinidumpResource:
    def __init__(self, stackwalker: Stackwalker) -> None:
        self.stackwalker = stackwalker

    def _read_form(self, req: falcon.Request) -> tuple[bytes, dict[str, str]]:
        limit = self.stackwalker.max_dump_size
        if req.content_length is not None and req.content_length > limit:
            raise _refuse("too_large", falcon.HTTPContentTooLarge, f"Payload is over {limit} bytes")
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise _refuse(
                "not_multipart",
                falcon.HTTPBadRequest,
                f"Send multipart/form-data with the minidump in {DUMP_FIELD!r}",
            )
        dump: bytes | None = None
        annotations: dict[str, str] = {}
        total = 0
        try:
            for part in req.get_media():
                data = part.stream.read(limit + 1 - total)
                total += len(data)
                if total > limit:
                    raise _refuse(
                        "too_large", falcon.HTTPContentTooLarge, f"Payload is over {limit} bytes"
                    )
                if part.name == DUMP_FIELD:
                    dump = data
                elif not part.filename:
                    annotations[part.name] = data.decode("utf-8", "replace")
        except (MultipartParseError, falcon.MediaMalformedError) as exc:
            raise _refuse(
                "bad_multipart", falcon.HTTPBadRequest, "Malformed multipart body"
            ) from exc
        if dump is None:
            raise _refuse("no_minidump", falcon.HTTPBadRequest, f"No {DUMP_FIELD!r} file part")
        return dump, annotations

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.stackwalker.enabled:
            # Not configured: this service has no such endpoint (nothing to retry).
            raise _refuse(
                "no_stackwalker",
                falcon.HTTPNotFound,
                "POST /minidump is off: set ELIOT_STACKWALKER_PATH to turn it on",
            )
        if self.stackwalker.problem:
            raise _refuse("no_stackwalker", falcon.HTTPServiceUnavailable, self.stackwalker.problem)
        started = time.perf_counter()
        dump, annotations = self._read_form(req)
        try:
            json_dump, report = self.stackwalker.walk(dump)
        except NotAMinidump as exc:
            raise _refuse("not_a_minidump", falcon.HTTPBadRequest, str(exc)) from exc
        except StackwalkerMissing as exc:
            raise _refuse("no_stackwalker", falcon.HTTPServiceUnavailable, str(exc)) from exc
        except WalkFailed as exc:
            if exc.timed_out:
                raise falcon.HTTPGatewayTimeout(title=str(exc)) from exc
            raise falcon.HTTPUnprocessableEntity(title=str(exc)) from exc
        body: dict[str, Any] = dict(json_dump)
        explain_walk(body, report, self.stackwalker.symbols)
        body["symbol_fetch"] = {
            "modules": report.statuses,
            "downloaded": report.downloaded,
            "ms": round(report.seconds * 1000, 1),
        }
        if annotations:
            body["annotations"] = annotations
        resp.content_type = "application/json"
        resp.text = json.dumps(body)
        elapsed = time.perf_counter() - started
        metrics.timing("minidump.api", value=elapsed * 1000)
        logger.info(
            "minidump: %d bytes, %d modules (%d downloaded), time: %.3f",
            len(dump),
            len(report.statuses),
            report.downloaded,
            elapsed,
        )
