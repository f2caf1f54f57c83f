# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Black-box tests of eliot (ELIOT_URL). Read-only: symbolication requests
only, which at most fill the service's own cache."""

import json
import urllib.error
import urllib.request

import pytest


def post(url, payload, headers=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url, body, {"Content-Type": "application/json", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


MISSING = ["tecken-systemtest-missing.pdb", "0123456789ABCDEF0123456789ABCDEF1"]


def test_index(eliot_url):
    with urllib.request.urlopen(eliot_url + "/", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")


def test_empty_jobs(eliot_url):
    assert post(eliot_url + "/symbolicate/v5", {"jobs": []})[::2] == (200, {"results": []})


def test_unknown_module_and_formatting(eliot_url):
    payload = {
        "jobs": [{"memoryMap": [MISSING, ["", ""]], "stacks": [[[0, 16], [-1, -1], [1, 5]]]}]
    }
    status, headers, body = post(eliot_url + "/symbolicate/v5", payload, {"Debug": "true"})
    assert status == 200
    result = body["results"][0]
    assert result["stacks"] == [
        [
            {"frame": 0, "module": MISSING[0], "module_offset": "0x10"},
            {"frame": 1, "module": "<unknown>", "module_offset": "-0x1"},
            {"frame": 2, "module": "<unknown>", "module_offset": "0x5"},
        ]
    ]
    assert result["found_modules"] == {"/".join(MISSING): False, "/": None}
    assert "debug" in body


def test_v4(eliot_url):
    payload = {"memoryMap": [MISSING], "stacks": [[[0, 16], [-1, 32]]], "version": 4}
    status, _, body = post(eliot_url + "/symbolicate/v4", payload)
    assert status == 200
    assert body == {
        "symbolicatedStacks": [[f"0x10 (in {MISSING[0]})", "0x20 (in <unknown>)"]],
        "knownModules": [False],
    }


@pytest.mark.parametrize(
    "payload,title",
    [
        (None, "Payload is not valid JSON"),
        ({"jobs": [{}] * 11}, "please limit number of jobs in a single request to <= 10"),
        ({"jobs": [{}]}, "job 0 is invalid: no stacks specified"),
        (5, "job 0 is invalid"),
        (
            {"jobs": [{"memoryMap": [["a/b", "0"]], "stacks": [[]]}]},
            "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        ),
        (
            {"jobs": [{"memoryMap": [MISSING], "stacks": [[[0, True]]]}]},
            "job 0 has invalid stacks: stack 0 frame 0 has an invalid module_offset",
        ),
    ],
)
def test_bad_payloads_are_400(eliot_url, payload, title):
    raw = b"{" if payload is None else None
    status, headers, body = post(
        eliot_url + "/symbolicate/v5", payload, {"Origin": "https://example.com"}, raw=raw
    )
    assert (status, body) == (400, {"title": title})
    assert (
        headers.get("access-control-allow-origin", headers.get("Access-Control-Allow-Origin"))
        == "*"
    )
