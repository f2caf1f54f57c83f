# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A small OpenID Connect provider for the tests, run as its own process over
HTTP (``python oidc_provider.py PORT CLIENT_ID REDIRECT_URI``).

It implements what a login needs: discovery, JWKS (a fresh RSA key per run),
``/authorize`` (a form where the person types their email; it checks the
client, redirect URI and an S256 PKCE challenge), ``/token`` (authorization
code with the PKCE verifier, single use, expiring; refresh token), and
``/userinfo``. ID tokens are RS256 JWTs signed with joserfc. ``/admin/*``
lets a test block or unblock a user, change the code lifetime, or make the
next ID token carry a wrong nonce."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import time
from html import escape
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from joserfc import jwt
from joserfc.jwk import RSAKey


class Provider:
    def __init__(self, issuer: str, client_id: str, redirect_uri: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": "test", "use": "sig", "alg": "RS256"}
        )
        self.codes: dict[str, dict[str, Any]] = {}
        self.refresh: dict[str, str] = {}
        self.access: dict[str, str] = {}
        self.blocked: set[str] = set()
        self.code_lifetime = 60.0
        self.wrong_nonce = False

    def id_token(self, email: str, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "sub-" + hashlib.sha256(email.encode()).hexdigest()[:16],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": email,
            "email_verified": True,
        }
        if self.wrong_nonce:
            claims["nonce"] = "not-the-nonce"
            self.wrong_nonce = False
        return jwt.encode({"alg": "RS256", "kid": "test"}, claims, self.key)

    def tokens_for(self, email: str, nonce: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.access[access] = email
        self.refresh[refresh] = email
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": refresh,
        }
        if nonce is not None:
            answer["id_token"] = self.id_token(email, nonce)
        return answer

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        method = environ["REQUEST_METHOD"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        form: dict[str, str] = {}
        if method == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = {
                k: v[-1] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()
            }
        status, headers, body = self.route(method, path, query, form, environ)
        start_response(status, headers)
        return [body]

    def json(self, data: Any, status: str = "200 OK") -> tuple[str, list, bytes]:
        return status, [("Content-Type", "application/json")], json.dumps(data).encode()

    def route(
        self, method: str, path: str, query: dict, form: dict, environ: dict
    ) -> tuple[str, list, bytes]:
        if path == "/.well-known/openid-configuration":
            return self.json(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": self.issuer + "/authorize",
                    "token_endpoint": self.issuer + "/token",
                    "userinfo_endpoint": self.issuer + "/userinfo",
                    "jwks_uri": self.issuer + "/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "subject_types_supported": ["public"],
                }
            )
        if path == "/favicon.ico":
            return "204 No Content", [], b""
        if path == "/jwks":
            return self.json({"keys": [self.key.as_dict(private=False)]})
        if path == "/authorize" and method == "GET":
            if (
                query.get("client_id") != self.client_id
                or query.get("redirect_uri") != self.redirect_uri
            ):
                return (
                    "400 Bad Request",
                    [("Content-Type", "text/plain")],
                    b"unknown client or redirect_uri",
                )
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                return "400 Bad Request", [("Content-Type", "text/plain")], b"PKCE S256 required"
            hidden = "".join(
                f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                for k, v in query.items()
            )
            page = (
                '<!doctype html><html lang="en"><head><title>Test provider</title></head><body><h1>Test provider</h1>'
                f'<form method="post" action="/authorize">{hidden}<label>Email <input name="email" id="email"></label>'
                '<button type="submit">Sign in</button></form></body></html>'
            )
            return "200 OK", [("Content-Type", "text/html; charset=utf-8")], page.encode()
        if path == "/authorize" and method == "POST":
            email = form.get("email", "")
            if email in self.blocked:
                loc = (
                    form["redirect_uri"]
                    + "?"
                    + urlencode({"error": "access_denied", "state": form.get("state", "")})
                )
            else:
                code = secrets.token_urlsafe(16)
                self.codes[code] = {
                    "email": email,
                    "nonce": form.get("nonce", ""),
                    "challenge": form["code_challenge"],
                    "redirect_uri": form["redirect_uri"],
                    "at": time.time(),
                }
                loc = (
                    form["redirect_uri"]
                    + "?"
                    + urlencode({"code": code, "state": form.get("state", "")})
                )
            return "302 Found", [("Location", loc)], b""
        if path == "/token" and method == "POST":
            if form.get("client_id") != self.client_id:
                return self.json({"error": "invalid_client"}, "401 Unauthorized")
            if form.get("grant_type") == "authorization_code":
                item = self.codes.pop(form.get("code", ""), None)
                if item is None or time.time() - item["at"] > self.code_lifetime:
                    return self.json(
                        {"error": "invalid_grant", "error_description": "code unknown or expired"},
                        "400 Bad Request",
                    )
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    challenge != item["challenge"]
                    or form.get("redirect_uri") != item["redirect_uri"]
                ):
                    return self.json(
                        {
                            "error": "invalid_grant",
                            "error_description": "PKCE or redirect_uri mismatch",
                        },
                        "400 Bad Request",
                    )
                return self.json(self.tokens_for(item["email"], item["nonce"]))
            if form.get("grant_type") == "refresh_token":
                email = self.refresh.get(form.get("refresh_token", ""))
                if email is None or email in self.blocked:
                    return self.json(
                        {"error": "invalid_grant", "error_description": "user blocked"},
                        "400 Bad Request",
                    )
                return self.json(self.tokens_for(email, None))
            return self.json({"error": "unsupported_grant_type"}, "400 Bad Request")
        if path == "/userinfo":
            token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
            email = self.access.get(token)
            if email is None or email in self.blocked:
                return self.json({"error": "invalid_token"}, "401 Unauthorized")
            return self.json(
                {"sub": "sub-" + hashlib.sha256(email.encode()).hexdigest()[:16], "email": email}
            )
        if path == "/admin/block":
            self.blocked.add(form["email"])
            return self.json({"ok": True})
        if path == "/admin/unblock":
            self.blocked.discard(form["email"])
            return self.json({"ok": True})
        if path == "/admin/config":
            if "code_lifetime" in form:
                self.code_lifetime = float(form["code_lifetime"])
            if "wrong_nonce" in form:
                self.wrong_nonce = form["wrong_nonce"] == "1"
            return self.json({"ok": True})
        return "404 Not Found", [("Content-Type", "text/plain")], b"not found"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    port, client_id, redirect_uri = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    provider = Provider(f"http://127.0.0.1:{port}", client_id, redirect_uri)
    server = make_server("127.0.0.1", port, provider, server_class=_Server, handler_class=_Quiet)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
