# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""OpenID Connect login (authorization code + PKCE) and re-validation, with
authlib's OAuth 2 client and joserfc for the ID token.

* :meth:`OIDC.start` makes a state, a nonce and a PKCE verifier, keeps them in
  the database (``oidc_states``) and returns the provider's authorization URL.
* :meth:`OIDC.finish` takes the callback's ``state`` and ``code``, exchanges
  the code (sending the verifier), checks the ID token's signature against the
  provider's JWKS and its ``iss``, ``aud``, ``exp`` and ``nonce``; the email is
  the identity. A new email becomes a user with no permissions.
* :meth:`OIDC.revalidate` asks the provider again with the stored refresh
  token (then userinfo): a refused refresh or userinfo makes the user inactive.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tecken_symbols import accounts
from tecken_symbols.accounts import User
from tecken_symbols.db import Database
from tecken_symbols.people import store

logger = logging.getLogger(__name__)

#: Seconds re-validation waits after the provider could not be reached.
UNREACHABLE_BACKOFF = 60.0

DISCOVERY_TTL = 3600


class LoginError(Exception):
    """The login could not be completed; the message can be shown to the person."""


@dataclass
class OIDCSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    allowed_domains: tuple[str, ...]
    redirect_uri: str
    timeout: float
    revalidate_interval: float


class OIDC:
    def __init__(self, settings: OIDCSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0
        self._lock = threading.Lock()
        #: Until then (monotonic) the provider is not asked again: it could not
        #: be reached, and requests must not each wait for its timeout.
        self._unreachable_until = 0.0

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._discovery is None or time.monotonic() - self._discovered_at > DISCOVERY_TTL:
                url = self.issuer + "/.well-known/openid-configuration"
                try:
                    resp = requests.get(url, timeout=self.settings.timeout)
                    resp.raise_for_status()
                    data = resp.json()
                except (requests.RequestException, ValueError) as exc:
                    raise LoginError(f"the identity provider could not be reached: {exc}") from exc
                if data.get("issuer", "").rstrip("/") != self.issuer:
                    raise LoginError(
                        "the identity provider's discovery document names another issuer"
                    )
                self._discovery = data
                self._discovered_at = time.monotonic()
            return self._discovery

    def _client(self, **kwargs: Any) -> OAuth2Session:
        s = self.settings
        return OAuth2Session(
            client_id=s.client_id,
            client_secret=s.client_secret or None,
            token_endpoint_auth_method="client_secret_post" if s.client_secret else "none",
            scope=s.scopes,
            redirect_uri=s.redirect_uri,
            code_challenge_method="S256",
            default_timeout=s.timeout,
            **kwargs,
        )

    def start(self, next_url: str = "/") -> tuple[str, str]:
        """Begin a login; returns (authorization URL, state)."""
        meta = self.metadata()
        state = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        store.save_oidc_state(self.db, state, nonce, verifier, next_url)
        url, _ = self._client().create_authorization_url(
            meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
        return url, state

    def _verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = self.metadata()
        try:
            jwks = requests.get(meta["jwks_uri"], timeout=self.settings.timeout).json()
            token = jwt.decode(id_token, KeySet.import_key_set(jwks))
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError, KeyError, requests.RequestException) as exc:
            raise LoginError(f"the identity provider's ID token was refused: {exc}") from exc
        return dict(token.claims)

    def finish(self, state: str, code: str) -> tuple[User, str]:
        """Complete a login; returns (user, the next URL saved at the start).
        Raises :class:`LoginError`."""
        saved = store.pop_oidc_state(self.db, state)
        if saved is None:
            raise LoginError("this login was not started here or took too long (state mismatch)")
        meta = self.metadata()
        try:
            token = self._client(state=state).fetch_token(
                meta["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=saved["code_verifier"],
            )
        except (OAuth2Error, OAuthError, requests.RequestException, ValueError) as exc:
            raise LoginError(f"the identity provider refused the login: {exc}") from exc
        if "id_token" not in token:
            raise LoginError("the identity provider sent no ID token")
        claims = self._verify_id_token(token["id_token"], saved["nonce"])
        email = claims.get("email")
        if not email:
            email = self._userinfo(token["access_token"]).get("email")
        if not email:
            raise LoginError("the identity provider did not tell your email address")
        if claims.get("email_verified") is False:
            raise LoginError("your email address is not verified at the identity provider")
        email = accounts.normalize_email(email)
        domains = self.settings.allowed_domains
        if domains and email.rsplit("@", 1)[1] not in domains:
            raise LoginError("your email domain may not log in here")
        user = accounts.get_user_by_email(self.db, email)
        if user is None:
            user = accounts.create_user(self.db, email)
            store.audit(self.db, None, "user created at first login", email, method="oidc")
        if not user.is_active:
            raise LoginError("your account is inactive; ask an administrator")
        store.set_oidc_identity(
            self.db, user.id, self.issuer, str(claims["sub"]), token.get("refresh_token")
        )
        return user, saved["next_url"]

    def _userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return {}
        resp = requests.get(
            endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=self.settings.timeout,
        )
        if resp.status_code in (401, 403):
            raise LoginError("the identity provider no longer knows this user")
        resp.raise_for_status()
        return resp.json()

    def revalidate(self, user_id: int) -> bool:
        """Ask the provider whether the user is still theirs; deactivates the
        user when refused. Returns whether the user is still valid. A provider
        that cannot be reached leaves the user as they are (logged)."""
        fields = store.oidc_user_fields(self.db, user_id)
        refresh = fields.get("oidc_refresh_token")
        if not fields.get("oidc_subject"):
            return True
        if not refresh:
            # Nothing to ask with: the person has to log in again.
            store.delete_user_sessions(self.db, user_id)
            return True
        if time.monotonic() < self._unreachable_until:
            return True
        try:
            meta = self.metadata()
            token = self._client().fetch_token(
                meta["token_endpoint"], grant_type="refresh_token", refresh_token=refresh
            )
            info = self._userinfo(token["access_token"])
            if info.get("sub") and str(info["sub"]) != fields["oidc_subject"]:
                raise LoginError("the identity provider answered for another user")
        except (OAuth2Error, OAuthError, LoginError) as exc:
            logger.info("user %s refused at re-validation: %s", user_id, exc)
            store.deactivate(self.db, user_id)
            user = accounts.get_user(self.db, user_id)
            store.audit(
                self.db,
                None,
                "deactivated at re-validation",
                user.email if user else str(user_id),
                reason=str(exc)[:200],
            )
            return False
        except (requests.RequestException, ValueError) as exc:
            logger.warning("could not re-validate user %s: %s", user_id, exc)
            self._unreachable_until = time.monotonic() + UNREACHABLE_BACKOFF
            return True
        store.mark_validated(self.db, user_id, token.get("refresh_token"))
        return True

    def revalidate_stale(self) -> tuple[int, int]:
        """Re-validate every OIDC user not checked within the interval;
        returns (checked, deactivated)."""
        checked = deactivated = 0
        for user_id in store.stale_oidc_users(self.db, self.settings.revalidate_interval):
            checked += 1
            if not self.revalidate(user_id):
                deactivated += 1
        return checked, deactivated
