# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Local development runner behind ``make run`` and ``./bin/*``.

Settings are layered the way the docs say: the process environment wins over
``./.env``, which wins over ``deploy/local-dev.env``. (honcho's own ``-e``
applies its files *over* the environment, so it is not used.)

``python -m tecken_shared.devrun start [PROCESS ...]``
    Start the Procfile's processes under honcho; once each web service
    answers ``/__lbheartbeat__``, print where things are and what to do next.

``python -m tecken_shared.devrun exec COMMAND [ARG ...]``
    Run one command (an admin CLI, say) with the same settings as ``make run``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from everett.manager import parse_env_file

DEFAULT_ENV_FILE = "deploy/local-dev.env"
DEFAULT_PROCFILE = "deploy/Procfile"

#: Web services: Procfile name -> (settings namespace, default bind).
WEB = {
    "symbols": ("SYMBOLS", "0.0.0.0:3000"),
    "eliot": ("ELIOT", "0.0.0.0:8050"),
    "collector": ("COLLECTOR", "0.0.0.0:8000"),
}


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables of a ``.env``-style file; empty when it doesn't exist."""
    try:
        return parse_env_file(Path(path).read_text().splitlines())
    except FileNotFoundError:
        return {}


def layered_env(
    environ: Mapping[str, str], env_file: str = DEFAULT_ENV_FILE, dotenv: str = ".env"
) -> dict[str, str]:
    """``env_file``'s values, overridden by ``dotenv``'s, overridden by ``environ``."""
    return {**read_env_file(env_file), **read_env_file(dotenv), **environ}


def base_url(env: Mapping[str, str], name: str) -> str:
    """The loopback URL of web service ``name`` from its ``*_GUNICORN_BIND``."""
    namespace, default = WEB[name]
    bind = env.get(f"{namespace}_GUNICORN_BIND", default)
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "localhost"
    return f"http://{host}:{port}"


def greeting(env: Mapping[str, str], names: list[str]) -> str:
    """What ``make run`` prints once the services answer."""
    lines = ["", "Tecken is running:"]
    labels = {
        "symbols": "symbols (upload, download, web UI)",
        "eliot": "eliot (symbolication API)",
        "collector": "collector (crash reports)",
    }
    for name in names:
        if name in WEB:
            lines.append(f"  {labels[name]:45} {base_url(env, name)}/")
    lines += [
        "Data lives under ./var (SQLite database, symbol files, symcaches, crashes).",
        "",
        "Next, in another terminal (the docs' quickstart goes on from here):",
        "  ./bin/tecken-symbols-admin superuser you@example.com",
        "  ./bin/tecken-symbols-admin set-password you@example.com   # then log in at "
        f"{base_url(env, 'symbols')}/login",
        "  ./bin/tecken-symbols-admin create-token you@example.com > token.txt",
        "  TECKEN_AUTH_TOKEN=$(cat token.txt) ./bin/tecken-upload-symbols "
        f"--url {base_url(env, 'symbols')} path/to/symbols/",
        "",
    ]
    return "\n".join(lines)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/__lbheartbeat__", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def _greet_when_up(
    env: Mapping[str, str], names: list[str], proc: subprocess.Popen, wait: float
) -> None:
    urls = [base_url(env, n) for n in names if n in WEB]
    deadline = time.monotonic() + wait
    while proc.poll() is None and time.monotonic() < deadline:
        if all(_answers(u) for u in urls):
            print(greeting(env, names), flush=True)
            return
        time.sleep(0.5)
    if proc.poll() is None:
        print(f"devrun: not every service answered within {wait:.0f}s; see the log above")


def start(names: list[str], env: dict[str, str], procfile: str, wait: float) -> int:
    """Run honcho in the foreground with ``env``; its exit status."""
    cmd = [sys.executable, "-m", "honcho", "-f", procfile, "start", *names]
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, frame: object) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    names = names or list(WEB)
    threading.Thread(target=_greet_when_up, args=(env, names, proc, wait), daemon=True).start()
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tecken_shared.devrun", description=__doc__)
    parser.add_argument("--env-file", default=DEFAULT_ENV_FILE)
    parser.add_argument("--procfile", default=DEFAULT_PROCFILE)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for heartbeats")
    sub = parser.add_subparsers(dest="action", required=True)
    start_p = sub.add_parser("start", help="start Procfile processes (all when none named)")
    start_p.add_argument("names", nargs="*")
    exec_p = sub.add_parser("exec", help="run a command with make run's settings")
    exec_p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    env = layered_env(os.environ, args.env_file)
    # The workspace's commands (gunicorn, tecken-*) come from this interpreter's venv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if args.action == "start":
        return start(args.names, env, args.procfile, args.wait)
    if not args.command:
        parser.error("exec needs a command")
    os.execvpe(args.command[0], args.command, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
