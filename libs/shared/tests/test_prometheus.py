# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Prometheus' /metrics: in one process, and added up over gunicorn workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import falcon
import markus
import pytest
import webtest

from tecken_shared.dockerflow import add_dockerflow_routes
from tecken_shared.metrics import MetricSpec, setup_metrics
from tecken_shared.testing.servers import free_port, wait_for_port

REGISTRY = {
    "svc.requests": MetricSpec("svc.requests", "incr", "Requests by result.", ("result",)),
    "svc.took": MetricSpec("svc.took", "timing", "Time per request.", ()),
    "svc.queue": MetricSpec("svc.queue", "gauge", "Queue length.", ()),
}


def make_app() -> webtest.TestApp:
    app = falcon.App()
    add_dockerflow_routes(app, checks={})
    return webtest.TestApp(app)


def test_metrics_are_served_in_prometheus_format() -> None:
    setup_metrics("logging,prometheus", registry=REGISTRY, host_id="host-a")
    try:
        metrics = markus.get_metrics("svc")
        metrics.incr("requests", tags=["result:ok"])
        metrics.incr("requests", value=2, tags=["result:ok", "other:x"])
        metrics.timing("took", 12.5)
        metrics.gauge("queue", 7)
        response = make_app().get("/metrics")
        assert response.content_type == "text/plain"
        text = response.text
        assert 'svc_requests_total{result="ok"} 3.0' in text
        assert "svc_took_count 1.0" in text
        assert 'svc_took_bucket{le="25.0"} 1.0' in text
        assert "svc_queue 7.0" in text
        assert "# HELP svc_requests_total Requests by result." in text
    finally:
        setup_metrics("none", registry=REGISTRY)


def test_metrics_404_when_prometheus_is_off() -> None:
    setup_metrics("none", registry=REGISTRY)
    response = make_app().get("/metrics", status=404)
    assert "METRICS_BACKEND=prometheus" in response.json["description"]


APP = """
import falcon, markus
from tecken_shared.dockerflow import add_dockerflow_routes
from tecken_shared.metrics import MetricSpec, setup_metrics

setup_metrics("prometheus", registry={"svc.hits": MetricSpec("svc.hits", "incr", "Hits.", ())})
metrics = markus.get_metrics("svc")

class Hit:
    def on_get(self, req, resp):
        metrics.incr("hits")
        resp.media = {"pid": __import__("os").getpid()}

application = falcon.App()
application.add_route("/hit", Hit())
add_dockerflow_routes(application, checks={})
"""


@pytest.mark.slow
def test_metrics_add_up_over_gunicorn_workers(tmp_path: Path) -> None:
    (tmp_path / "promapp.py").write_text(APP)
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "3",
            "-b",
            f"127.0.0.1:{port}",
            "promapp:application",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        pids = set()
        for _ in range(60):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hit", timeout=5) as resp:
                pids.add(resp.read())
        time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "svc_hits_total 60.0" in text, text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
