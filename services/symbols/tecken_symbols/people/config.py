# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Options of logins, sessions and the pages (``SYMBOLS_<OPTION>``; the
option class is :class:`tecken_symbols.settings.PeopleConfig`), parsed once
into :class:`PeopleSettings` (``ctx.people``)."""

from __future__ import annotations

from dataclasses import dataclass

from everett.manager import ConfigManager

from tecken_symbols.settings import NAMESPACE, PeopleConfig

__all__ = ["PeopleConfig", "PeopleSettings"]


@dataclass(frozen=True)
class PeopleSettings:
    session_idle_lifetime: float = 28800
    session_absolute_lifetime: float = 1209600
    session_cookie_secure: bool = True
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email"
    oidc_allowed_email_domains: tuple[str, ...] = ()
    oidc_provider_name: str = "single sign-on"
    oidc_revalidate_interval: float = 86400
    oidc_timeout: float = 10
    login_max_attempts: int = 10
    login_attempt_window: float = 900
    invitation_lifetime: float = 604800
    eliot_url: str = "http://localhost:8050"

    @classmethod
    def from_config(cls, manager: ConfigManager) -> PeopleSettings:
        config = manager.with_namespace(NAMESPACE).with_options(PeopleConfig)
        values = {name: config(name) for name in cls.__dataclass_fields__}
        values["oidc_allowed_email_domains"] = tuple(
            d.strip().lower() for d in values["oidc_allowed_email_domains"] if d.strip()
        )
        return cls(**values)
