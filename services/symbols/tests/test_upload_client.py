# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The tecken-upload-symbols CLI against a real HTTP server on 127.0.0.1."""

import io
import zipfile

import falcon
import pytest

from tecken_shared.testing.servers import wsgi_server
from tecken_symbols import upload_client
from tecken_symbols.upload.testing import FIXTURES


class Recorder:
    def __init__(self):
        self.statuses = []
        self.requests = []

    def on_post(self, req, resp):
        form = req.get_media()
        parts = {}
        for part in form:
            parts[part.name] = (part.filename, part.stream.read())
        self.requests.append(
            {
                "token": req.get_header("Auth-Token"),
                "parts": parts,
                # gunicorn refuses a request with both (a streamed body must be sized).
                "chunked": req.get_header("Transfer-Encoding"),
                "length": req.content_length,
            }
        )
        status = self.statuses.pop(0) if self.statuses else 201
        resp.status = status
        resp.media = {"upload": {"id": 1}} if status == 201 else {"error": f"status {status}"}


@pytest.fixture
def server():
    recorder = Recorder()
    app = falcon.App()
    app.add_route("/upload/", recorder)
    with wsgi_server(app) as url:
        yield url, recorder


def run(monkeypatch, capsys, *args, token="a" * 32):
    if token:
        monkeypatch.setenv("TECKEN_AUTH_TOKEN", token)
    else:
        monkeypatch.delenv("TECKEN_AUTH_TOKEN", raising=False)
    code = upload_client.main([*args, "--backoff", "0.01"])
    out, err = capsys.readouterr()
    return code, out, err


def test_uploads_a_zip(server, monkeypatch, capsys):
    url, rec = server
    code, out, _ = run(monkeypatch, capsys, str(FIXTURES / "sample.zip"), "--url", url)
    assert code == 0 and '"id": 1' in out
    parts = rec.requests[0]["parts"]
    assert parts["sample.zip"] == ("sample.zip", (FIXTURES / "sample.zip").read_bytes())
    assert rec.requests[0]["token"] == "a" * 32
    assert rec.requests[0]["chunked"] is None and rec.requests[0]["length"] > 70398


def test_zips_a_directory_and_sends_try(server, monkeypatch, capsys, tmp_path):
    url, rec = server
    root = tmp_path / "syms"
    (root / "a.pdb" / "ABC").mkdir(parents=True)
    (root / "a.pdb" / "ABC" / "a.sym").write_bytes(b"MODULE x")
    code, _, err = run(monkeypatch, capsys, str(root), "--url", url, "--try")
    assert code == 0 and "zipped 1 files" in err
    parts = rec.requests[0]["parts"]
    assert parts["try"] == (None, b"true")
    with zipfile.ZipFile(io.BytesIO(parts["syms.zip"][1])) as zf:
        assert zf.namelist() == ["a.pdb/ABC/a.sym"]


def test_retries_5xx_and_429(server, monkeypatch, capsys):
    url, rec = server
    rec.statuses = [503, 429, 500]
    code, _, err = run(monkeypatch, capsys, str(FIXTURES / "sample.zip"), "--url", url)
    assert code == 0 and len(rec.requests) == 4
    assert err.count("retrying") == 3


def test_gives_up(server, monkeypatch, capsys):
    url, rec = server
    rec.statuses = [503] * 10
    code, _, err = run(
        monkeypatch, capsys, str(FIXTURES / "sample.zip"), "--url", url, "--retries", "2"
    )
    assert code == 1 and len(rec.requests) == 3 and "giving up" in err


def test_4xx_is_not_retried(server, monkeypatch, capsys):
    url, rec = server
    rec.statuses = [400]
    code, _, err = run(monkeypatch, capsys, str(FIXTURES / "sample.zip"), "--url", url)
    assert code == 1 and len(rec.requests) == 1 and "HTTP 400: status 400" in err


def test_connection_error_retried(monkeypatch, capsys):
    from tecken_shared.testing.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(
        monkeypatch, capsys, str(FIXTURES / "sample.zip"), "--url", url, "--retries", "1"
    )
    assert code == 1 and "connection error" in err


def test_usage_errors(monkeypatch, capsys, tmp_path):
    code, _, err = run(monkeypatch, capsys, str(FIXTURES / "sample.zip"), token="")
    assert code == 2 and "TECKEN_AUTH_TOKEN" in err
    code, _, err = run(monkeypatch, capsys, str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "x.txt").write_text("x")
    code, _, err = run(monkeypatch, capsys, str(tmp_path / "x.txt"))
    assert code == 2
    (tmp_path / "empty").mkdir()
    code, _, err = run(monkeypatch, capsys, str(tmp_path / "empty"))
    assert code == 2 and "no files" in err
