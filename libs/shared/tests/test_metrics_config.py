# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json
import logging

import markus
import pytest
from everett import InvalidValueError
from markus.testing import MetricsMock

from tecken_shared.config import CommonConfig, build_config_manager
from tecken_shared.logging import JsonFormatter
from tecken_shared.metrics import load_registry, registry_rst_table, setup_metrics, undocumented
from tecken_shared.sentry import SCRUBBED, scrub_event, sentry_enabled, setup_sentry


def write_registry(tmp_path, text):
    path = tmp_path / "metrics.yaml"
    path.write_text(text)
    return path


def test_registry_load_and_table(tmp_path):
    registry = load_registry(
        write_registry(
            tmp_path,
            "svc.upload:\n  type: timing\n  description: Time to upload.\n  tags: [try]\n",
        )
    )
    assert registry["svc.upload"].type == "timing"
    assert "``svc.upload``" in registry_rst_table(registry)


def test_registry_rejects_bad_entries(tmp_path):
    with pytest.raises(ValueError, match="needs a type"):
        load_registry(write_registry(tmp_path, "a.b:\n  type: counter\n  description: x\n"))
    with pytest.raises(ValueError, match="needs a description"):
        load_registry(write_registry(tmp_path, "a.b:\n  type: incr\n"))


def test_undocumented_keys_found(tmp_path):
    registry = load_registry(
        write_registry(tmp_path, "svc.known:\n  type: incr\n  description: Known.\n")
    )
    metrics = markus.get_metrics("svc")
    with MetricsMock() as mm:
        metrics.incr("known")
        assert undocumented(mm.get_records(), registry) == []
        metrics.incr("unknown")
        metrics.gauge("known", 3)
        assert undocumented(mm.get_records(), registry) == [
            "svc.known is a gauge, metrics.yaml says incr",
            "svc.unknown (incr) is not in metrics.yaml",
        ]


def test_logging_backend_emits(tmp_path, caplog):
    registry = load_registry(
        write_registry(tmp_path, "svc.known:\n  type: incr\n  description: Known.\n")
    )
    setup_metrics("logging", registry=registry, host_id="h1")
    with caplog.at_level(logging.INFO, logger="markus"):
        markus.get_metrics("svc").incr("known")
    assert "svc.known" in caplog.text and "host:h1" in caplog.text
    setup_metrics("none", registry=registry)
    with pytest.raises(ValueError):
        setup_metrics("carrier-pigeon", registry=registry)


def test_config_env_beats_env_file_and_alternate_keys(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("ELIOT_LOGGING_LEVEL=DEBUG\nELIOT_STATSD_PORT=9999\n")
    manager = build_config_manager({"ELIOT_LOGGING_LEVEL": "ERROR"}, str(env_file))
    common = manager.with_namespace("eliot").with_options(CommonConfig)
    assert common("logging_level") == "ERROR"
    assert common("statsd_port") == 9999
    manager = build_config_manager({"LOCAL_DEV_ENV": "true"}, str(tmp_path / "none.env"))
    assert manager.with_namespace("eliot").with_options(CommonConfig)("local_dev_env") is True


def test_config_bad_value_names_the_key(tmp_path):
    manager = build_config_manager({"ELIOT_STATSD_PORT": "eighty"}, str(tmp_path / "none.env"))
    common = manager.with_namespace("eliot").with_options(CommonConfig)
    with pytest.raises(InvalidValueError, match="ELIOT_STATSD_PORT"):
        common("statsd_port")


def test_json_log_lines():
    formatter = JsonFormatter(host_id="h1")
    record = logging.makeLogRecord(
        {
            "name": "tecken_eliot",
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("you",),
            "crash_id": "c1",
        }
    )
    data = json.loads(formatter.format(record))
    assert data["Message"] == "hello you"
    assert data["Hostname"] == "h1"
    assert data["Fields"] == {"crash_id": "c1"}


def test_sentry_off_without_dsn_and_scrubs():
    assert setup_sentry("", "1.0", "h", "svc") is False
    assert not sentry_enabled()
    event = {
        "request": {
            "headers": {"Auth-Token": "secret", "X-Forwarded-For": "1.2.3.4", "Accept": "*/*"},
            "cookies": {"session": "s"},
            "env": {"REMOTE_ADDR": "1.2.3.4"},
        },
        "user": {"ip_address": "1.2.3.4"},
    }
    scrubbed = scrub_event(event)
    assert scrubbed["request"]["headers"] == {
        "Auth-Token": SCRUBBED,
        "X-Forwarded-For": SCRUBBED,
        "Accept": "*/*",
    }
    assert scrubbed["request"]["cookies"] == SCRUBBED
    assert scrubbed["request"]["env"]["REMOTE_ADDR"] == SCRUBBED
    assert scrubbed["user"]["ip_address"] == SCRUBBED


def test_log_options_masks_secrets_and_url_passwords(caplog):
    import logging

    from everett.manager import Option

    from tecken_shared.config import log_options, masked

    class Component:
        class Config:
            database_url = Option(default="sqlite:///x.db")
            secret_key = Option(default="")
            cache_url = Option(default="redis://127.0.0.1:6379/0")

    manager = build_config_manager(
        environ={
            "SVC_DATABASE_URL": "postgresql://tecken:hunter2@db:5432/tecken",
            "SVC_SECRET_KEY": "abc",
        },
        env_file=None,
    )
    with caplog.at_level(logging.INFO, logger="test.options"):
        log_options(logging.getLogger("test.options"), manager, "svc", [Component])
    text = caplog.text
    assert "config SVC_DATABASE_URL=postgresql://tecken:*****@db:5432/tecken" in text
    assert "config SVC_SECRET_KEY=*****" in text
    assert "config SVC_CACHE_URL=redis://127.0.0.1:6379/0" in text
    assert "hunter2" not in text and "abc" not in text.replace("SVC_", "")
    assert masked("SVC_STORAGE_URL", "s3://bucket/v1?endpoint_url=http://minio:9000") == (
        "s3://bucket/v1?endpoint_url=http://minio:9000"
    )
