# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``tecken-submit-crash``: submit a crash report from files, the way a crash
reporter does (for testing and the systemtests)::

    tecken-submit-crash http://localhost:8000 --annotations extra.json \\
        --dump crash.dmp --dump memory_report=memory.json.gz --gzip

Prints the collector's answer (``CrashID=bp-...``) and exits 0 when the crash
was accepted, 1 when it was discarded or refused, 2 on usage or network
errors."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tecken_collector.multipart import compress, encode_multipart

DEFAULT_DUMP_NAME = "upload_file_minidump"


def parse_dump_arg(value: str, index: int) -> tuple[str, Path]:
    """``name=path`` or just ``path`` (the first unnamed dump is the minidump)."""
    name, sep, path = value.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    return (DEFAULT_DUMP_NAME if index == 0 else f"dump_{index}"), Path(value)


def build_request(
    url: str,
    annotations: dict,
    dumps: dict[str, bytes],
    *,
    gzip: bool = False,
    as_json: bool = False,
    token: str = "",
    user_agent: str = "tecken-submit-crash/1.0",
) -> urllib.request.Request:
    body, content_type = encode_multipart(annotations, dumps, as_json=as_json)
    headers = {"Content-Type": content_type, "User-Agent": user_agent}
    if gzip:
        body = compress(body)
        headers["Content-Encoding"] = "gzip"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = url.rstrip("/")
    if not target.endswith("/submit"):
        target += "/submit"
    return urllib.request.Request(target, data=body, headers=headers, method="POST")


def send(request: urllib.request.Request, timeout: float = 60) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tecken-submit-crash",
        description="Submit a crash report (annotations JSON + dump files) to a collector.",
    )
    parser.add_argument("url", help="collector base URL (e.g. http://localhost:8000)")
    parser.add_argument(
        "--annotations",
        "-a",
        required=True,
        help="JSON file with an object of crash annotations (ProductName, Version, ...)",
    )
    parser.add_argument(
        "--dump",
        "-d",
        action="append",
        default=[],
        help="dump file, as PATH or NAME=PATH (repeatable; the first unnamed one is "
        "sent as upload_file_minidump)",
    )
    parser.add_argument("--gzip", action="store_true", help="send the body gzip-compressed")
    parser.add_argument(
        "--json", action="store_true", help="send annotations as one JSON 'extra' part"
    )
    parser.add_argument(
        "--token", default="", help="stage submitter token (for a 'uuid' annotation)"
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    args = parser.parse_args(argv)

    try:
        annotations = json.loads(Path(args.annotations).read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read annotations from {args.annotations}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(annotations, dict):
        print(f"{args.annotations} must hold a JSON object", file=sys.stderr)
        return 2
    dumps: dict[str, bytes] = {}
    for index, value in enumerate(args.dump):
        name, path = parse_dump_arg(value, index)
        try:
            dumps[name] = path.read_bytes()
        except OSError as exc:
            print(f"cannot read dump {path}: {exc}", file=sys.stderr)
            return 2
    request = build_request(
        args.url, annotations, dumps, gzip=args.gzip, as_json=args.json, token=args.token
    )
    try:
        status, text = send(request, args.timeout)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach {request.full_url}: {exc}", file=sys.stderr)
        return 2
    print(text.rstrip("\n") if text else f"HTTP {status} (empty body)")
    return 0 if status == 200 and text.startswith("CrashID=") else 1


if __name__ == "__main__":
    sys.exit(main())
