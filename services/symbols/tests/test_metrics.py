# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

from tecken_shared.metrics import load_registry, undocumented
from tecken_symbols.db import utcnow
from tecken_symbols.settings import METRICS_YAML

SPEC_DOWNLOAD_METRICS = {
    "tecken.download_symbol",
    "tecken.symboldownloader_exists",
    "tecken.symboldownloader.file_age_days",
    "tecken.download_symbol_code_id_lookup",
    "tecken.syminfo.lookup.timing",
    "tecken.syminfo.lookup.cached",
    "tecken.api",
}


def test_download_metrics_are_documented(metricsmock, make_service):
    svc = make_service()
    app = svc.app
    svc.put("xul.pdb/ABCDEF/xul.sym", b"x")
    svc.put("try.pdb/ABCDEF/try.sym", b"x", try_symbols=True)
    app.get("/xul.pdb/ABCDEF/xul.sym", status=302)
    app.get("/xul.pdb/ABCDEF/xul.sym", status=302)  # cached
    app.get("/try/try.pdb/ABCDEF/try.sym", status=302)
    app.get("/nope.pdb/ABCDEF/nope.sym", status=404)
    app.get("/nope.pdb/ABCDEF/nope.sym", status=404)
    svc.ctx.db.execute(
        "INSERT INTO file_uploads (key, created_at, debug_filename, debug_id, code_file, code_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ("xul.pdb/ABCDEF/xul.sym", utcnow(), "xul.pdb", "ABCDEF", "xul.dll", "5AB"),
    )
    app.get("/xul.dll/5AB/xul.sym", status=302)
    app.get("/api/syminfo/xul.dll/5AB")
    svc.ctx.missing.flush()
    for i in range(3):  # overflow the buffer
        svc.ctx.missing.max_buffer = 0
        svc.ctx.missing.record(f"m{i}.pdb", "AB", "m.sym")

    records = metricsmock.get_records()
    registry = load_registry(METRICS_YAML)
    assert undocumented(records, registry) == []
    emitted = {r.key for r in records}
    assert SPEC_DOWNLOAD_METRICS <= emitted, SPEC_DOWNLOAD_METRICS - emitted
    assert "tecken.missing_symbols.flush" in emitted
    assert "tecken.missing_symbols.dropped" in emitted
    ages = [r for r in records if r.key == "tecken.symboldownloader.file_age_days"]
    assert {t for r in ages for t in r.tags} >= {"storage:regular", "storage:try"}


def test_service_level_metrics(metricsmock):
    import runpy
    from pathlib import Path

    from tecken_shared.sentry import guarded, scrub_event
    from tecken_symbols.app import count_sentry_scrub_error

    def broken(event, hint):
        raise RuntimeError("boom")

    assert guarded(broken, count_sentry_scrub_error)({"request": {}}, None) is None
    assert (
        guarded(scrub_event, count_sentry_scrub_error)(
            {"request": {"headers": {"Auth-Token": "k"}}}, None
        )["request"]["headers"]["Auth-Token"]
        == "[Scrubbed]"
    )
    conf = runpy.run_path(
        str(Path(__file__).resolve().parents[3] / "deploy" / "gunicorn-symbols.conf.py")
    )
    conf["worker_abort"](object())
    records = metricsmock.get_records()
    assert undocumented(records, load_registry(METRICS_YAML)) == []
    assert {r.key for r in records} == {"tecken.sentry_scrub_error", "tecken.gunicorn_worker_abort"}
