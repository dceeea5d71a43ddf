"""Encoura session authentication as an httpx.Auth: log in lazily, refresh before expiry, re-login once on 401.

Keeping this in an `auth_flow` (the httpx pattern) means every request, from any thread, carries
fresh headers without callers thinking about tokens at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import httpx

from common.errors import ConfigError
from common.http_retry import IDEMPOTENT
from encoura_tasks.api.errors import EncouraAuthError, EncouraResponseError
from encoura_tasks.api.models import Organization

TOKEN_LIFETIME_SECONDS = 20 * 60
REFRESH_MARGIN_SECONDS = 5 * 60  # refresh when a token is 15 minutes old


def _clean_token(raw: object) -> str:
    # A C# sample reports tokens occasionally arriving wrapped in quotes.
    token = str(raw or "").strip().strip('"').strip("'")
    if not token:
        raise EncouraResponseError("Encoura returned an empty sessionToken")
    return token


class EncouraAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        username: str,
        password: str,
        organization_uid: str | None,
        scheme: str = "Bearer",
        token_lifetime: float = TOKEN_LIFETIME_SECONDS,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._username = username
        self._password = password
        self._wanted_org = organization_uid
        self._scheme = scheme
        self._token_lifetime = token_lifetime
        self._refresh_margin = refresh_margin
        self._lock = threading.RLock()
        self._token: str | None = None
        self._issued_at = 0.0
        self._login_failed: EncouraAuthError | None = None
        self.organization: Organization | None = None
        self.organizations: list[Organization] = []

    def __repr__(self) -> str:
        return f"EncouraAuth(base_url={self._base_url!r}, scheme={self._scheme!r}, logged_in={self._token is not None})"

    # -- helpers -----------------------------------------------------------
    def _age(self) -> float:
        return time.monotonic() - self._issued_at

    def _login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self._base_url}/login",
            headers={"x-api-key": self._api_key},
            json={"userName": self._username, "password": self._password, "acceptedTerms": True},
            # Logging in creates nothing that a second login would duplicate: retry it like a GET.
            extensions={IDEMPOTENT: True},
        )

    def _refresh_request(self) -> httpx.Request:
        return httpx.Request(
            "GET",
            f"{self._base_url}/refresh-token",
            headers={"x-api-key": self._api_key, "Authorization": f"{self._scheme} {self._token}"},
        )

    def _handle_login(self, response: httpx.Response) -> None:
        if response.status_code in (400, 401, 403):
            self._login_failed = EncouraAuthError(
                f"Encoura refused the login (HTTP {response.status_code}); check ENCOURA_USERNAME, "
                "ENCOURA_PASSWORD and ENCOURA_API_KEY. Not retrying, so the account is not locked out."
            )
            raise self._login_failed
        if response.status_code >= 300:
            raise EncouraResponseError(f"Encoura login failed with HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise EncouraResponseError("Encoura login answered with something that is not JSON") from None
        if not isinstance(body, dict):
            raise EncouraResponseError("Encoura login answered with an unexpected JSON shape")
        token = _clean_token(body.get("sessionToken"))
        orgs_raw = ((body.get("user") or {}).get("organizations")) or []
        self.organizations = [Organization.model_validate(o) for o in orgs_raw if isinstance(o, dict) and o.get("uid")]
        self.organization = self._choose_organization()
        self._token = token
        self._issued_at = time.monotonic()

    def _choose_organization(self) -> Organization:
        listed = ", ".join(f"{o.uid} ({o.name})" for o in self.organizations) or "none"
        if self._wanted_org:
            for org in self.organizations:
                if org.uid == self._wanted_org:
                    return org
            self._login_failed = EncouraAuthError(
                f"ENCOURA_ORGANIZATION_UID={self._wanted_org} is not one of this account's organizations: {listed}"
            )
            raise self._login_failed
        if len(self.organizations) == 1:
            return self.organizations[0]
        if not self.organizations:
            self._login_failed = EncouraAuthError("the Encoura account has no organizations")
            raise self._login_failed
        raise ConfigError(
            f"ENCOURA_ORGANIZATION_UID: the account can see several organizations; set it to one of: {listed}"
        )

    def _apply(self, request: httpx.Request) -> None:
        request.headers["x-api-key"] = self._api_key
        request.headers["Authorization"] = f"{self._scheme} {self._token}"
        assert self.organization is not None
        request.headers["Organization"] = self.organization.uid

    # -- flows -------------------------------------------------------------
    def ensure_login(self) -> Generator[httpx.Request, httpx.Response, None]:
        if self._login_failed is not None:
            raise self._login_failed
        if self._token is None or self._age() >= self._token_lifetime:
            response = yield self._login_request()
            self._handle_login(response)
        elif self._age() >= self._token_lifetime - self._refresh_margin:
            response = yield self._refresh_request()
            if response.status_code == 200:
                try:
                    self._token = _clean_token(response.json().get("sessionToken"))
                    self._issued_at = time.monotonic()
                    return
                except (ValueError, AttributeError, EncouraResponseError):
                    pass
            response = yield self._login_request()  # refresh refused: fall back to a fresh login
            self._handle_login(response)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            yield from self.ensure_login()
            token_used = self._token
        self._apply(request)
        response = yield request
        if response.status_code != 401:
            return
        with self._lock:
            if self._token == token_used:  # nobody re-logged in meanwhile
                self._token = None
            yield from self.ensure_login()
        self._apply(request)
        yield request
