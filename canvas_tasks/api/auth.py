"""Bearer-token auth as an httpx.Auth, so the token lives in one object that never prints it."""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx


class CanvasTokenAuth(httpx.Auth):
    """Attach `Authorization: Bearer` only to requests for the Canvas origin.

    The token is fetched lazily through `token_source` (it may come from a Prefect Secret block) and
    is never sent to another host: an errors attachment URL can point at a file store, and httpx
    only strips the header on redirects, not on a fresh request we make ourselves.
    """

    def __init__(self, token_source: Callable[[], str], origin: str) -> None:
        self._token_source = token_source
        self._token: str | None = None
        self._origin = httpx.URL(origin)

    def __repr__(self) -> str:
        return f"CanvasTokenAuth(origin={self._origin.scheme}://{self._origin.netloc.decode()}, token=***)"

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self._origin.scheme, self._origin.host, self._origin.port)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._same_origin(request.url):
            if self._token is None:
                self._token = self._token_source()
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
