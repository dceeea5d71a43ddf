"""Network failures told in one line a person can act on: which host, what went wrong, what to change.

httpx says `ConnectError: [Errno 111] Connection refused` and names no host. `ExplainingTransport`
sits outermost in a client's transport stack (outside the retries, so they still see the original
error) and re-raises the *same* exception class with a message naming the service, the host and the
likely fix. Keeping the class means every `except httpx.ConnectError` (the "never sent" rule, task
retry conditions) behaves exactly as before; only what a person reads changes.
"""

from __future__ import annotations

import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from common.errors import EXPLAINED


@dataclass(frozen=True)
class ServiceHints:
    """What to name in a message: the service, and the settings that would fix each kind of failure."""

    service: str  # "Encoura", "Canvas"
    url_setting: str  # ENCOURA_BASE_URL
    ca_setting: str  # ENCOURA_CA_BUNDLE
    timeout_setting: str | None = None  # ENCOURA_TIMEOUT_SECONDS


def _chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__} {current}")
        current = current.__cause__ or current.__context__
    return " | ".join(parts).lower()


def is_certificate_problem(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "certificate_verify_failed" in _chain_text(exc) or "certificate verify failed" in _chain_text(exc)


def _proxy_for(url: httpx.URL) -> str | None:
    """The proxy the environment names for this URL, as host:port for a message, if any."""
    proxy = env_proxy(str(url))
    if not proxy:
        return None
    parsed = urlsplit(proxy)
    return f"{parsed.hostname}:{parsed.port}" if parsed.port else parsed.hostname


def explain(exc: httpx.TransportError, request: httpx.Request, hints: ServiceHints) -> str:
    """One line for a transport failure: `<service> at <host>: <what happened>; <what to do>`.

    Takes the request separately: inside a transport, httpx has not attached it to the exception yet."""
    url = request.url
    where = f"{url.host}:{url.port}" if url.port else url.host
    text = _chain_text(exc)
    lead = f"{hints.service} at {where}"
    proxy = _proxy_for(url)
    if isinstance(exc, httpx.ProxyError) or (proxy and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)):
        via = f" {proxy}" if proxy else ""
        return (
            f"{lead}: the proxy{via} refused or could not be reached; check HTTPS_PROXY / HTTP_PROXY "
            "(and NO_PROXY), or unset them if this network needs none"
        )
    if is_certificate_problem(exc):
        return (
            f"{lead}: its TLS certificate is not trusted (a firewall doing TLS inspection, or a self-signed "
            f"certificate?); set {hints.ca_setting} to your organisation's CA bundle (a PEM file), or "
            "SSL_CERT_FILE for every program"
        )
    if isinstance(exc, httpx.ConnectError) and any(
        marker in text
        for marker in ("name or service not known", "nodename nor servname", "getaddrinfo", "temporary failure in name")
    ):
        return f"{lead}: the host name does not resolve (DNS); check {hints.url_setting} and this machine's network"
    if isinstance(exc, httpx.ConnectError) and "refused" in text:
        return (
            f"{lead}: the connection was refused; the service is down or a firewall blocks the port "
            f"(check {hints.url_setting}); try again later"
        )
    if isinstance(exc, httpx.TimeoutException):
        setting = f" (or raise {hints.timeout_setting})" if hints.timeout_setting else ""
        return (
            f"{lead}: no answer in time ({type(exc).__name__}); the service or network is slow, "
            f"try again later{setting}"
        )
    if isinstance(exc, httpx.ConnectError):
        return f"{lead}: could not connect ({exc}); check {hints.url_setting} and the network, then try again"
    return f"{lead}: the connection failed ({type(exc).__name__}: {exc}); try again later"


class ExplainingTransport(httpx.BaseTransport):
    """Outermost transport: the same exception class, with a message that names host and fix."""

    def __init__(self, wrapped: httpx.BaseTransport, hints: ServiceHints) -> None:
        self.wrapped = wrapped
        self.hints = hints

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.wrapped.handle_request(request)
        except httpx.TransportError as exc:
            explained = type(exc)(explain(exc, request, self.hints), request=request)
            setattr(explained, EXPLAINED, True)  # common.errors.explain: this message is the one to show
            raise explained from exc

    def close(self) -> None:
        self.wrapped.close()


def is_html(response: httpx.Response) -> bool:
    """A maintenance page or a proxy's error page rather than the API's JSON."""
    content_type = response.headers.get("content-type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, NO_PROXY...). httpx ignores proxy variables
    once a client is given its own transport, as our retrying clients are, so they pass this one on."""
    parsed = urlsplit(url)
    if not parsed.hostname or urllib.request.proxy_bypass(parsed.hostname):
        return None
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def check_ca_bundle(value: str | None) -> str | None:
    """Settings validator body: a CA bundle must be a readable PEM file that Python's ssl accepts."""
    if value is None or not value.strip():
        return None
    path = value.strip()
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ValueError(f"no file at {path!r}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{path!r} is not a readable PEM CA bundle ({type(exc).__name__})") from None
    return path


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """TLS is always verified; a CA bundle adds an organisation's roots (TLS inspection) to the check.

    One context per client, handed to each of its transports: given `verify=True`, httpx builds a
    context per transport and loads the whole CA store into each, about 0.1-0.2 s apiece at start-up
    (measured in the benchmark's start-up). `httpx.create_ssl_context()` is what httpx itself would
    build, SSL_CERT_FILE and SSL_CERT_DIR included.
    """
    if not ca_bundle:
        return httpx.create_ssl_context()
    return ssl.create_default_context(cafile=ca_bundle)
