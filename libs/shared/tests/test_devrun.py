# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""`make run`'s settings: the environment wins over ./.env, which wins over
deploy/local-dev.env, for the services and for gunicorn alike."""

from __future__ import annotations

import os
import runpy
import urllib.request
from pathlib import Path

import pytest

from tecken_shared.config import build_config_manager
from tecken_shared.devrun import greeting, layered_env
from tecken_shared.gunicorn_conf import gunicorn_settings
from tecken_shared.testing.servers import free_port, make_run

ROOT = Path(__file__).resolve().parents[3]


def test_environment_over_dotenv_over_local_dev_env(tmp_path: Path) -> None:
    (tmp_path / "local.env").write_text("A=file\nB=file\nC=file\n")
    (tmp_path / ".env").write_text("B=dotenv\nC=dotenv\n")
    env = layered_env({"C": "environ"}, str(tmp_path / "local.env"), str(tmp_path / ".env"))
    assert (env["A"], env["B"], env["C"]) == ("file", "dotenv", "environ")
    assert layered_env({}, str(tmp_path / "none.env"), str(tmp_path / "none")) == {}


def test_gunicorn_reads_the_dotenv_file_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SYMBOLS_GUNICORN_BIND=127.0.0.1:33400\nSYMBOLS_GUNICORN_WORKERS=5\n"
    )
    manager = build_config_manager({"SYMBOLS_GUNICORN_WORKERS": "3"}, str(tmp_path / ".env"))
    settings = gunicorn_settings("symbols", manager, bind="0.0.0.0:3000", timeout=900)
    assert settings["bind"] == "127.0.0.1:33400"
    assert settings["workers"] == 3
    assert settings["timeout"] == 900
    assert settings["control_socket_disable"] is True
    assert "control_socket" not in settings


def test_the_conf_files_give_each_service_its_defaults(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SYMBOLS", "ELIOT", "COLLECTOR"):
        monkeypatch.delenv(f"{name}_GUNICORN_BIND", raising=False)
        monkeypatch.delenv(f"{name}_GUNICORN_TIMEOUT", raising=False)
    binds = {
        svc: runpy.run_path(str(ROOT / f"deploy/gunicorn-{svc}.conf.py"))["bind"]
        for svc in ("symbols", "eliot", "collector")
    }
    assert binds == {
        "symbols": "0.0.0.0:3000",
        "eliot": "0.0.0.0:8050",
        "collector": "0.0.0.0:8000",
    }
    assert runpy.run_path(str(ROOT / "deploy/gunicorn-symbols.conf.py"))["timeout"] == 900


def test_greeting_names_the_urls_and_the_next_commands() -> None:
    text = greeting({"SYMBOLS_GUNICORN_BIND": "127.0.0.1:3999"}, ["symbols", "eliot"])
    assert "http://127.0.0.1:3999/" in text
    assert "http://localhost:8050/" in text
    assert "./bin/tecken-symbols-admin superuser" in text
    assert "./var" in text


@pytest.mark.slow
def test_make_run_eliot_takes_settings_from_the_environment(tmp_path: Path) -> None:
    """`ELIOT_SYMBOL_URLS=... make run-eliot` uses the environment's value, not
    deploy/local-dev.env's, for gunicorn's bind and for the app alike."""
    port = free_port()
    env = {
        **os.environ,
        "ELIOT_GUNICORN_BIND": f"127.0.0.1:{port}",
        "ELIOT_GUNICORN_WORKERS": "1",
        "ELIOT_SYMBOL_URLS": "http://127.0.0.1:9/from-the-environment/",
        "ELIOT_SYMBOLS_CACHE_DIR": str(tmp_path / "cache"),
        "ELIOT_LOG_FORMAT": "text",
    }
    with make_run("run-eliot", ROOT, env, tmp_path / "run.log") as log:
        url = f"http://127.0.0.1:{port}/__lbheartbeat__"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
        text = log.read_text(errors="replace")
        assert "from-the-environment" in text
        assert "http://localhost:3000/" not in text.split("Tecken is running")[0]
        assert f"http://127.0.0.1:{port}/" in text
