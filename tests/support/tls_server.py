"""A tiny HTTPS (or plain HTTP) server on loopback with a self-signed certificate: the "corporate TLS
inspection" and "maintenance page" peers of the outage tests. Real sockets, real TLS handshakes.

`serve(ForwardTo(upstream), tls_folder=...)` is a TLS-inspecting middlebox in front of a sandbox: it
relays every request (method, path, headers, body) to the plain-HTTP upstream over its own connection,
so a whole flow run can go through it once the client trusts its certificate. `silent_server()`
accepts connections and never answers: the "timeout" peer."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Answer = tuple[int, str, bytes]  # status, content type, body
LOGIN_OK: Answer = (
    200,
    "application/json",
    json.dumps({"sessionToken": "tls-test-token", "user": {"organizations": [{"uid": "org-1", "name": "Test U"}]}})
    .encode(),
)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost signed by itself (so it is its own CA bundle)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate Inspection Test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class RunningServer:
    base_url: str
    cert: Path | None
    requests: list[str]


_HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding", "keep-alive"}


class ForwardTo:
    """A relay to a plain-HTTP upstream origin (the sandbox): what a TLS-inspecting proxy does."""

    def __init__(self, upstream_origin: str) -> None:
        self.upstream = upstream_origin.rstrip("/")

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        response = httpx.request(method, self.upstream + path, headers=sent, content=body, timeout=30)
        return response.status_code, response.headers.get("content-type", "application/octet-stream"), response.content


@contextmanager
def serve(
    answer: Callable[[str, str], Answer] | ForwardTo, *, tls_folder: Path | None = None
) -> Iterator[RunningServer]:
    """Serve `answer(method, path)` on 127.0.0.1; with `tls_folder`, over TLS with a self-signed cert."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append(f"{self.command} {self.path}")
            if isinstance(answer, ForwardTo):
                status, content_type, body = answer(self.command, self.path, dict(self.headers.items()), body)
            else:
                status, content_type, body = answer(self.command, self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _reply

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    cert: Path | None = None
    scheme = "http"
    if tls_folder is not None:
        cert, key = self_signed_cert(tls_folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningServer(f"{scheme}://127.0.0.1:{httpd.server_address[1]}/v1", cert, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A listening socket that is never accepted from: the kernel completes the TCP handshake, so the
    client connects, sends its request and waits for an answer that never comes. Yields host:port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"
