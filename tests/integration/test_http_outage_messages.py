"""Outages and mistakes on the HTTP side end in one line naming the host and the fix (issue 13).

Each case is a real peer on this machine: a closed port, a name under `.invalid` (RFC 2606: never
resolves), a self-signed HTTPS server standing in for a TLS-inspecting firewall, a proxy that refuses,
an HTML maintenance page, a wrong API key. The client is ours, unmocked; the message is what the CLI
and the Prefect logs print.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.api.errors import CanvasAPIError
from common.errors import ConfigError
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.api.errors import EncouraAuthError, EncouraError
from encoura_tasks.api.settings import load_encoura_settings
from tests.support.tls_server import LOGIN_OK, serve

CREDS = {"api_key": "k-123", "username": "u", "password": "p-secret"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(base_url: str, **extra: object) -> EncouraClient:
    settings = load_encoura_settings(base_url=base_url, max_attempts=2, timeout_seconds=5, **CREDS, **extra)
    return EncouraClient(settings)


def login_error(base_url: str, **extra: object) -> BaseException:
    with client(base_url, **extra) as c, pytest.raises((httpx.HTTPError, EncouraError)) as caught:
        c.login()
    return caught.value


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    yield


def test_connection_refused_names_host_port_and_setting() -> None:
    port = closed_port()
    exc = login_error(f"http://127.0.0.1:{port}/v1")
    assert isinstance(exc, httpx.ConnectError)  # same class: the "never sent" rule still applies
    text = str(exc)
    assert f"127.0.0.1:{port}" in text and "refused" in text and "ENCOURA_BASE_URL" in text
    assert "\n" not in text


def test_dns_failure_names_the_host() -> None:
    exc = login_error("https://api-datalab.encoura.invalid/v1")
    text = str(exc)
    assert "api-datalab.encoura.invalid" in text and "DNS" in text and "ENCOURA_BASE_URL" in text


def test_untrusted_certificate_points_at_the_ca_bundle_setting(tmp_path: Path) -> None:
    with serve(lambda method, path: LOGIN_OK, tls_folder=tmp_path) as server:
        exc = login_error(server.base_url)
        text = str(exc)
        assert "not trusted" in text and "ENCOURA_CA_BUNDLE" in text and "127.0.0.1" in text
        assert server.requests == []  # nothing was sent over the unverified connection

        # The office's CA bundle makes the same server trusted; verification stays on.
        assert server.cert is not None
        with client(server.base_url, ca_bundle=str(server.cert)) as c:
            orgs = c.login()
        assert [o.uid for o in orgs] == ["org-1"]
        assert server.requests == ["POST /v1/login"]


def test_missing_ca_bundle_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_encoura_settings(
            base_url="https://api-datalab.encoura.org/v1", ca_bundle=str(tmp_path / "nope.pem"), **CREDS
        )
    assert "ENCOURA_CA_BUNDLE" in caught.value.render()


def test_refusing_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    exc = login_error("https://api-datalab.encoura.org/v1")
    text = str(exc)
    assert "proxy" in text and f"127.0.0.1:{port}" in text and "HTTPS_PROXY" in text


def test_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our clients bring their own transport, which makes httpx ignore HTTPS_PROXY: we pass it on."""
    with serve(lambda method, path: LOGIN_OK) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/v1"))
        monkeypatch.setenv("NO_PROXY", "")
        # Plain http on a loopback name that is not the proxy itself: the request must go via the proxy.
        with client("http://localhost:9/v1") as c:
            c.login()
        assert proxy.requests == ["POST http://localhost:9/v1/login"]


def test_maintenance_page_is_called_so() -> None:
    page = (503, "text/html", b"<html><body><h1>Down for maintenance</h1></body></html>")
    with serve(lambda method, path: page) as server:
        exc = login_error(server.base_url)
    text = str(exc)
    assert "HTML page" in text and "maintenance" in text and "127.0.0.1" in text


def test_refused_login_names_the_settings_and_is_tried_once() -> None:
    refused = (403, "application/json", b'{"message": "Forbidden"}')
    with serve(lambda method, path: refused) as server:
        exc = login_error(server.base_url)
        assert server.requests == ["POST /v1/login"]  # never retried: no account lock-out
    assert isinstance(exc, EncouraAuthError)
    assert "ENCOURA_API_KEY" in str(exc) and "ENCOURA_PASSWORD" in str(exc)
    assert "p-secret" not in str(exc) and "k-123" not in str(exc)


def test_canvas_names_its_own_settings(tmp_path: Path) -> None:
    with serve(lambda method, path: LOGIN_OK, tls_folder=tmp_path) as server:
        origin = server.base_url.removesuffix("/v1")
        with CanvasSisClient(origin, "1", lambda: "token") as c, pytest.raises(CanvasAPIError) as caught:
            c.check_root_account()
        assert server.requests == []
    assert "Canvas" in str(caught.value) and "CANVAS_CA_BUNDLE" in str(caught.value)
    port = closed_port()
    refused = CanvasSisClient(f"http://127.0.0.1:{port}", "1", lambda: "token")
    with refused as c, pytest.raises(CanvasAPIError) as caught:
        c.check_root_account()
    assert f"127.0.0.1:{port}" in str(caught.value) and "CANVAS_BASE_URL" in str(caught.value)
