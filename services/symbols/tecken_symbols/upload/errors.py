# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The one exception upload code raises for a request it refuses, and how a
resource answers it."""

from __future__ import annotations

from typing import Any

import falcon


class UploadError(Exception):
    """A refusal with an HTTP status and a message a person can act on.
    Answered as ``{"error": message}``."""

    def __init__(
        self, message: str, status: int = 400, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or {}


def answer_error(resp: falcon.Response, exc: UploadError) -> None:
    resp.status = falcon.code_to_http_status(exc.status)
    resp.media = {"error": exc.message, **exc.details}
