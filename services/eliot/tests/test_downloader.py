# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The downloader over tecken_shared.httpfetch: a body that breaks off is a
connection error, retried like one."""

import itertools

import pytest

from tecken_eliot.downloader import SymbolDownloader
from tecken_eliot.status import ModuleStatus
from tecken_shared.testing.servers import wsgi_server


@pytest.mark.parametrize("retries,status", [(1, ModuleStatus.FOUND), (0, ModuleStatus.ERROR)])
def test_a_body_that_breaks_off_is_retried(tmp_path, metricsmock, retries, status):
    calls = itertools.count()

    def server(environ, start_response):  # type: ignore[no-untyped-def]
        if next(calls) == 0:  # promises more than it sends, then closes
            start_response("200 OK", [("Content-Length", "100000")])
            return [b"MODULE"]
        start_response("200 OK", [("Content-Length", "5")])
        return [b"hello"]

    with wsgi_server(server) as url:
        downloader = SymbolDownloader(
            [url], timeout=2, retries=retries, backoff=0.01, max_size=1_000_000
        )
        result = downloader.download("a.pdb", "ABC", tmp_path / "a.sym")
    assert result.status is status
    if status is ModuleStatus.FOUND:
        assert (tmp_path / "a.sym").read_bytes() == b"hello"
        metricsmock.assert_histogram("eliot.downloader.download", tags=["response:success"])
    else:
        assert "broke off" in result.errors[0]
    metricsmock.assert_histogram("eliot.downloader.download", tags=["response:fail"])
