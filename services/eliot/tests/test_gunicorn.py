# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The deployed shape: gunicorn with deploy/gunicorn-eliot.conf.py and
several worker processes, plus the cache manager, on 127.0.0.1."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tecken_eliot.testing import SSLTUNNEL
from tecken_shared.testing.servers import free_port, wait_for_http, wait_for_port

REPO = Path(__file__).resolve().parents[3]


@contextlib.contextmanager
def eliot_node(symbol_server, cache_dir, tmp_path, workers=3, **extra):
    """One eliot node as deployed: gunicorn and the cache manager over
    ``cache_dir``; yields its base URL once a worker answers."""
    port = free_port()
    env = dict(
        os.environ,
        ELIOT_GUNICORN_BIND=f"127.0.0.1:{port}",
        ELIOT_GUNICORN_WORKERS=str(workers),
        ELIOT_SYMBOL_URLS=symbol_server.url,
        ELIOT_SYMBOLS_CACHE_DIR=str(cache_dir),
        ELIOT_METRICS_BACKEND="none",
        ELIOT_CACHE_MANAGER_HEARTBEAT_INTERVAL="0.5",
        TECKEN_ENV_FILE=str(tmp_path / "none.env"),
        **extra,
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "deploy/gunicorn-eliot.conf.py",
                "--no-control-socket",
                "tecken_eliot.wsgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "tecken_eliot.cache_manager"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for_port("127.0.0.1", port, 30)
        wait_for_http(f"http://127.0.0.1:{port}/__lbheartbeat__", 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def gunicorn(symbol_server, cache_dir, tmp_path):
    with eliot_node(symbol_server, cache_dir, tmp_path) as url:
        yield url


def post(url, payload):
    req = urllib.request.Request(
        url + "/symbolicate/v5", json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_concurrent_cold_requests_across_gunicorn_workers(gunicorn, symbol_server):
    symbol_server.delay = 0.5  # long enough for every worker to be waiting
    payload = {"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}
    results = [None] * 6

    def run(i):
        results[i] = post(gunicorn, payload)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r == results[0] for r in results)
    frame = results[0]["results"][0]["stacks"][0][0]
    assert frame["function"].endswith("~vector[abi:dn210000]()")
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    # The cache manager beside it is alive and seen by the workers.
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(gunicorn + "/__heartbeat__", timeout=10) as resp:
                assert json.loads(resp.read())["status"] == "ok"
                break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline, "the cache manager never became healthy"
            time.sleep(0.1)


def _post_chunked(base, body):
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request(
        "POST",
        "/symbolicate/v5",
        body=iter([body[:10], body[10:]]),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_a_chunked_body_is_read(gunicorn, symbol_server):
    # RT-24: no Content-Length; gunicorn de-chunks the body.
    payload = {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}]}
    status, answer = _post_chunked(gunicorn, json.dumps(payload).encode())
    assert status == 200
    assert answer["results"][0]["found_modules"] == {"/".join(SSLTUNNEL): True}
    # The body size limit holds for chunked bodies too (10 MB by default).
    status, answer = _post_chunked(gunicorn, b" " * 10_000_001)
    assert status == 400
    assert "Payload is too large" in answer["error"]


def test_a_symcache_truncated_in_place_does_not_kill_workers(gunicorn, symbol_server, cache_dir):
    # RT-23: every worker maps the file, then it shrinks under them.
    from tecken_eliot.naming import cache_stem

    payload = {"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}
    first = post(gunicorn, payload)
    for _ in range(12):
        assert post(gunicorn, payload) == first
    symc = cache_dir / "cache" / (cache_stem(*SSLTUNNEL) + ".symc")
    os.truncate(symc, 100)
    for _ in range(12):
        assert post(gunicorn, payload) == first  # no worker died mid-request


def test_two_nodes_share_a_symcache_tier(symbol_server, tmp_path):
    """Two eliot instances on one machine, each with its own disk cache,
    sharing a ``file://`` symcache tier: node B answers a module node A
    built from the tier, without fetching its sym file."""
    from tecken_eliot.naming import cache_stem

    tier = tmp_path / "tier"
    payload = {"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}
    caches = [tmp_path / "a", tmp_path / "b"]
    with eliot_node(
        symbol_server, caches[0], tmp_path, workers=1, ELIOT_SHARED_CACHE_URL=f"file://{tier}"
    ) as node_a:
        first = post(node_a, payload)
        deadline = time.monotonic() + 30
        while not list(tier.rglob("*.symc.zst")):
            assert time.monotonic() < deadline, "node A never added the symcache to the tier"
            time.sleep(0.05)
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    with eliot_node(
        symbol_server, caches[1], tmp_path, workers=1, ELIOT_SHARED_CACHE_URL=f"file://{tier}"
    ) as node_b:
        assert post(node_b, payload) == first
    assert symbol_server.downloads(*SSLTUNNEL) == 1  # node B never fetched the sym file
    stem = cache_stem(*SSLTUNNEL)
    assert (caches[1] / "cache" / (stem + ".symc")).exists()
    assert (caches[1] / "cache" / (stem + ".meta")).exists()
