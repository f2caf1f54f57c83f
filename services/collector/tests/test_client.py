# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The tecken-submit-crash command against a real collector on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from collector_helpers import ANNOTATIONS, read_raw_crash

from tecken_collector.app import create_app
from tecken_collector.client import main, parse_dump_arg
from tecken_shared.config import build_config_manager
from tecken_shared.testing.servers import free_port, wsgi_server


@pytest.fixture
def server(make_env, tmp_path):
    app = create_app(build_config_manager(make_env(), str(tmp_path / "none.env")))
    with wsgi_server(app) as url:
        yield url


@pytest.fixture
def files(tmp_path):
    annotations = tmp_path / "extra.json"
    annotations.write_text(json.dumps(ANNOTATIONS))
    dump = tmp_path / "crash.dmp"
    dump.write_bytes(b"MDMP" + bytes(1000))
    return annotations, dump


@pytest.mark.parametrize("extra", [[], ["--gzip"], ["--json"], ["--gzip", "--json"]])
def test_submit(server, files, roots, capsys, extra):
    annotations, dump = files
    code = main([server, "-a", str(annotations), "-d", str(dump), "-d", f"memory={dump}", *extra])
    out = capsys.readouterr().out.strip()
    assert code == 0, out
    crash_id = out.removeprefix("CrashID=bp-")
    raw = read_raw_crash(roots[0], crash_id)
    assert sorted(raw["metadata"]["dump_checksums"]) == ["memory", "upload_file_minidump"]
    assert raw["metadata"]["payload"] == ("json" if "--json" in extra else "multipart")
    assert raw["metadata"]["payload_compressed"] == ("1" if "--gzip" in extra else "0")


def test_discarded_exit_1(server, tmp_path, capsys):
    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps({"ProductName": "Nope"}))
    assert main([server, "-a", str(annotations)]) == 1
    assert capsys.readouterr().out.strip() == "Discarded=rule_unsupported_product"


def test_usage_errors(tmp_path, capsys):
    assert main(["http://127.0.0.1:1", "-a", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "list.json"
    bad.write_text("[]")
    assert main(["http://127.0.0.1:1", "-a", str(bad)]) == 2
    good = tmp_path / "ok.json"
    good.write_text("{}")
    assert main([f"http://127.0.0.1:{free_port()}", "-a", str(good)]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_dump_arg():
    assert parse_dump_arg("a/b.dmp", 0) == (
        "upload_file_minidump",
        Path("a/b.dmp"),
    )
    assert parse_dump_arg("memory=x.gz", 1)[0] == "memory"
    assert parse_dump_arg("x.dmp", 2)[0] == "dump_2"


def test_console_script_runs(server, files):
    annotations, dump = files
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tecken_collector.client",
            server,
            "-a",
            str(annotations),
            "-d",
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CrashID=bp-")
