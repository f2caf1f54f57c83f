# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The quickstart's commands (docs/quickstart.sh, which docs/quickstart.rst
shows piece by piece), run verbatim against `make run`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tecken_shared.testing.servers import make_run, make_run_env

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_the_quickstart_works_against_make_run(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env, urls = make_run_env(data)
    env.update({f"{name}_URL": url for name, url in urls.items()})  # the script's variables
    with make_run("run", ROOT, env, tmp_path / "run.log"):
        work = tmp_path / "work"
        work.mkdir()
        (work / "bin").symlink_to(ROOT / "bin")
        done = subprocess.run(
            ["sh", str(ROOT / "docs/quickstart.sh")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        out = done.stdout
        assert done.returncode == 0, done.stdout + done.stderr
        assert len((work / "token.txt").read_text().strip()) == 32
        assert '"filename": "symbols.zip"' in out
        assert "MODULE windows x86_64 0123456789ABCDEF0123456789ABCDEF1 hello.pdb" in out
        symbolicated = json.loads(next(line for line in out.splitlines() if '"results"' in line))
        frame = symbolicated["results"][0]["stacks"][0][0]
        assert (frame["function"], frame["line"]) == ("say_hello(char const*)", 13)
        crash_id = (work / "crashid.txt").read_text().strip().removeprefix("CrashID=bp-")
        raw = json.loads(out.strip().splitlines()[-1])
        assert raw["ProductName"] == "Hello"
        assert raw["uuid"] == crash_id


def test_the_readmes_admin_commands_work_pasted_in_order(tmp_path: Path) -> None:
    text = (ROOT / "README.rst").read_text()
    section = text.split("Administering symbols\n", 1)[1].split("\n\n``create-token``", 1)[0]
    commands = [
        line.strip()
        for line in section.splitlines()
        if line.startswith("    ./bin/") or line.startswith("    KEY=")
    ]
    assert len(commands) >= 6
    script = "set -e\n" + "\n".join(commands) + '\ntest -n "$KEY"\n'
    env = {**os.environ, "SYMBOLS_DATABASE_URL": f"sqlite:///{tmp_path}/symbols.db"}
    done = subprocess.run(
        ["sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ci@example.com" in done.stdout
