# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every validation message of /symbolicate/v5 and /v4, word for word (as
``title``, Eliot's key, and ``error``, the project's); every bad payload is a
400, never a 500."""

import json

import pytest

MM = [["ssltunnel", "8A07C88A3DA44E20A3490D88791183060"]]


def job(memory_map=None, stacks=None):
    return {
        "memoryMap": MM if memory_map is None else memory_map,
        "stacks": [[[0, 1]]] if stacks is None else stacks,
    }


def post_raw(app, body, path="/symbolicate/v5", **kw):
    return app.post(path, body, content_type="application/json", expect_errors=True, **kw)


CASES = [
    # (payload, title, reason)
    (
        {"jobs": [job()] * 11},
        "please limit number of jobs in a single request to <= 10",
        "too_many_jobs",
    ),
    ({"jobs": [5]}, "job 0 is invalid", None),
    ({"jobs": [job(), "x"]}, "job 1 is invalid", None),
    ({"jobs": [{}]}, "job 0 is invalid: no stacks specified", None),
    ({"jobs": [{"stacks": [[]]}]}, "job 0 is invalid: no memoryMap specified", None),
    (
        {"jobs": [job(memory_map={})]},
        "job 0 has invalid modules: modules must be a list",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a"]])]},
        "job 0 has invalid modules: module index 0 does not have a debug_filename and debug_id",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a", "B", "c"]])]},
        "job 0 has invalid modules: module index 0 does not have a debug_filename and debug_id",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a", "B"], "ab"])]},
        "job 0 has invalid modules: module index 1 does not have a debug_filename and debug_id",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a/b", "B"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[[5, "B"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[[None, "B"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a", "XYZ"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_id",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a", None]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_id",
        "invalid_modules",
    ),
    # A trailing newline is not a filename or id character ("$" alone would allow it).
    (
        {"jobs": [job(memory_map=[["xul.pdb\n", "B"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        "invalid_modules",
    ),
    (
        {"jobs": [job(memory_map=[["a", "AB\n"]])]},
        "job 0 has invalid modules: module index 0 has an invalid debug_id",
        "invalid_modules",
    ),
    (
        {"jobs": [job(stacks={})]},
        "job 0 has invalid stacks: stacks must be a list of lists",
        "invalid_stacks",
    ),
    (
        {"jobs": [{"memoryMap": MM, "stacks": []}]},
        "job 0 has invalid stacks: no stacks specified",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, 1]], 5])]},
        "job 0 has invalid stacks: stack 1 is not a list",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, 1], [0]]])]},
        "job 0 has invalid stacks: stack 0 frame 1 is not a list of two items",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[None]])]},
        "job 0 has invalid stacks: stack 0 frame 0 is not a list of two items",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[["0", 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_index",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0.0, 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_index",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[True, 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_index",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[None, 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_index",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[1, 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[-2, 1]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, -2]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, "1"]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, 1.5]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, False]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(stacks=[[[0, None]]])]},
        "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        "invalid_stacks",
    ),
    (
        {"jobs": [job(), job(stacks=[[[0, 1]], [[0, 1], [0, -3]]])]},
        "job 1 has invalid stacks: stack 1 frame 1 has an invalid module_offset",
        "invalid_stacks",
    ),
    # A payload without "jobs" is one job.
    ({"memoryMap": MM}, "job 0 is invalid: no stacks specified", None),
    # Non-object payloads and non-list jobs: Eliot answered some of these with a 500.
    (5, "job 0 is invalid", None),
    (True, "job 0 is invalid", None),
    (None, "job 0 is invalid", None),
    ("jobs", "job 0 is invalid", None),
    ([1, 2], "job 0 is invalid", None),
    ({"jobs": 5}, "jobs must be a list of jobs", "invalid_jobs"),
    ({"jobs": None}, "jobs must be a list of jobs", "invalid_jobs"),
    ({"jobs": "ab"}, "jobs must be a list of jobs", "invalid_jobs"),
    ({"jobs": {"a": 1}}, "jobs must be a list of jobs", "invalid_jobs"),
]


@pytest.mark.parametrize("payload,title,reason", CASES)
def test_v5_validation_messages(app, metricsmock, payload, title, reason):
    resp = post_raw(app, json.dumps(payload))
    assert resp.status_int == 400
    assert resp.json == {"title": title, "error": title}
    assert resp.content_type == "application/json"
    errors = metricsmock.filter_records("incr", stat="eliot.symbolicate.request_error")
    if reason:
        assert [r.tags for r in errors] == [[f"reason:{reason}"]]
    else:
        assert errors == []


@pytest.mark.parametrize("body", [b"", b"{", b"nope", b"\xff\xfe", b"[1,", b'{"jobs": [}'])
def test_bad_json(app, metricsmock, body):
    resp = post_raw(app, body)
    assert resp.status_int == 400
    assert resp.json == {"title": "Payload is not valid JSON", "error": "Payload is not valid JSON"}
    metricsmock.assert_incr("eliot.symbolicate.request_error", tags=["reason:bad_json"])


def test_bad_json_v4(app):
    resp = post_raw(app, b"{", path="/symbolicate/v4")
    assert resp.json == {"title": "Payload is not valid JSON", "error": "Payload is not valid JSON"}


def test_deeply_nested_json_is_a_400(app):
    resp = post_raw(app, b"[" * 100_000)
    assert resp.status_int == 400


def test_oversize_body_is_a_400(make_app, metricsmock):
    app = make_app(ELIOT_MAX_REQUEST_SIZE="1kb")
    body = json.dumps({"jobs": [job(stacks=[[[0, i] for i in range(200)]])]})
    assert len(body) > 1000
    resp = post_raw(app, body)
    assert resp.status_int == 400
    assert resp.json == {
        "title": "Payload is too large: the limit is 1000 bytes",
        "error": "Payload is too large: the limit is 1000 bytes",
    }
    metricsmock.assert_incr("eliot.symbolicate.request_error", tags=["reason:too_large"])


def test_exactly_ten_jobs_and_empty_jobs_are_fine(app, symbol_server):
    assert app.post_json("/symbolicate/v5", {"jobs": []}).json == {"results": []}
    resp = app.post_json("/symbolicate/v5", {"jobs": [job(stacks=[[]])] * 10})
    assert len(resp.json["results"]) == 10
    assert resp.json["results"][0] == {
        "stacks": [[]],
        "found_modules": {"ssltunnel/8A07C88A3DA44E20A3490D88791183060": None},
    }


def test_allowed_filename_and_id_characters(app, symbol_server):
    mm = [["a b+{}@<>~-_.", "abcdef"], ["", ""]]
    resp = app.post_json("/symbolicate/v5", {"jobs": [{"memoryMap": mm, "stacks": [[[1, 0]]]}]})
    assert resp.json["results"][0]["found_modules"] == {"a b+{}@<>~-_./abcdef": None, "/": None}


def test_v4_messages_name_job_0(app):
    resp = post_raw(app, json.dumps({"memoryMap": MM}), path="/symbolicate/v4")
    assert resp.json == {
        "title": "job 0 is invalid: no stacks specified",
        "error": "job 0 is invalid: no stacks specified",
    }
    resp = post_raw(app, json.dumps({"jobs": [job()]}), path="/symbolicate/v4")
    assert resp.json == {
        "title": "job 0 is invalid: no stacks specified",
        "error": "job 0 is invalid: no stacks specified",
    }
    resp = post_raw(app, json.dumps(7), path="/symbolicate/v4")
    assert resp.json == {"title": "job 0 is invalid", "error": "job 0 is invalid"}
    resp = post_raw(app, json.dumps(job(stacks=[[[3, 1]]])), path="/symbolicate/v4")
    message = "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules"
    assert resp.json == {"title": message, "error": message}
    # v4 has no MAX_JOBS check: a jobs key is just ignored.
    resp = post_raw(app, json.dumps({**job(), "jobs": [1] * 20}), path="/symbolicate/v4")
    assert resp.status_int == 200


def test_wrong_method_and_unknown_path(app):
    assert app.get("/symbolicate/v5", expect_errors=True).status_int == 405
    assert app.get("/nope", expect_errors=True).status_int == 404


def _random_value(rng, depth=0):
    choices = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randint(-3, 3),
        lambda: rng.choice([2**64, -(2**70), 0x50D4]),
        lambda: rng.random(),
        lambda: rng.choice(["", "ssltunnel", "a/b", "8A07C88A3DA44E20A3490D88791183060", "jobs"]),
    ]
    if depth < 4:
        choices += [
            lambda: [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
            lambda: {
                rng.choice(["jobs", "memoryMap", "stacks", "x"]): _random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))
            },
            lambda: [["ssltunnel", "8A07C88A3DA44E20A3490D88791183060"]],
            lambda: [[[rng.randint(-2, 1), rng.randint(-2, 0x6000)]]],
        ]
    return rng.choice(choices)()


def test_random_payloads_never_500(app, symbol_server):
    import random

    rng = random.Random(1234)
    statuses = set()
    for _ in range(400):
        payload = _random_value(rng)
        if rng.random() < 0.5:
            payload = {"jobs": [_random_value(rng) for _ in range(rng.randint(0, 3))]}
        for path in ("/symbolicate/v5", "/symbolicate/v4"):
            resp = post_raw(app, json.dumps(payload), path=path)
            assert resp.status_int in (200, 400), (payload, resp.text)
            statuses.add(resp.status_int)
    assert statuses == {200, 400}
