"""Export listing, one-time presigned downloads and S3's own rules, over real HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from sandbox.encoura import SandboxServer
from tests.support.encoura_sandbox import sandbox_client


def listing(client: httpx.Client, **params: str) -> list[dict[str, object]]:
    response = client.get("/datacenter/exports", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    return body


def download_url(client: httpx.Client, uid: str) -> str:
    response = client.get(f"/datacenter/exports/{uid}/download")
    assert response.status_code == 200, response.text
    return response.json()["downloadUrl"]


def test_listing_not_delivered_consumes_and_delivered_relists(seeded_sandbox: SandboxServer) -> None:
    with sandbox_client(seeded_sandbox) as client:
        first = listing(client, status="NotDelivered")
        second = listing(client, status="NotDelivered")
        delivered = listing(client, status="Delivered")

    assert len(first) == 6
    assert {e["status"] for e in first} == {"NotDelivered"}
    assert second == []
    assert {e["uid"] for e in delivered} == {e["uid"] for e in first}
    assert {e.status for e in seeded_sandbox.state.exports.values()} == {"Delivered"}


def test_listing_entries_look_like_the_documented_example(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("score-reporter", "ACT-X-03022026-081457.csv", b"h\r\n1\r\n2\r\n")
    with sandbox_client(encoura_sandbox) as client:
        [entry] = listing(client, status="NotDelivered", productKey="score-reporter")

    assert entry["uid"] == uid
    assert entry["productKey"] == "score-reporter"
    assert entry["quantity"] == 2
    assert {"fice", "organizationUid", "date", "created", "isExpired", "listPath"} <= set(entry)
    assert isinstance(entry["created"]["createdAt"], int)
    assert "deliveries" not in entry  # removed from the real response in July 2024


def test_product_key_filters_and_omitting_it_lists_every_product(seeded_sandbox: SandboxServer) -> None:
    with sandbox_client(seeded_sandbox) as client:
        scores = listing(client, status="NotDelivered", productKey="score-reporter")
        rest = listing(client, status="NotDelivered")
        unknown = listing(client, status="NotDelivered", productKey="no-such-product")

    assert [e["productKey"] for e in scores] == ["score-reporter", "score-reporter"]
    assert sorted({e["productKey"] for e in rest}) == ["declared", "inquiry", "prospect"]
    assert unknown == []


def test_unknown_status_is_400_and_parameter_names_are_case_sensitive(seeded_sandbox: SandboxServer) -> None:
    with sandbox_client(seeded_sandbox) as client:
        bad = client.get("/datacenter/exports", params={"status": "delivered"})
        assert bad.status_code == 400
        assert "NotDelivered" in bad.json()["message"]
        # `Status` is not the filter: everything comes back, and the NotDelivered ones are consumed.
        wrong_case = listing(client, Status="Delivered", ProductKey="declared")
    assert len(wrong_case) == 6


def test_listing_overrides_inject_bad_entries(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.add_export("inquiry", "a.csv", b"h\r\n", listing_overrides={"uid": None, "quantity": "lots"})
    with sandbox_client(encoura_sandbox) as client:
        [entry] = listing(client, status="NotDelivered")
    assert "uid" not in entry
    assert entry["quantity"] == "lots"


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("malformed_json", lambda r: r.headers["content-type"].startswith("application/json")),
        ("html_200", lambda r: r.headers["content-type"].startswith("text/html")),
        ("non_list", lambda r: isinstance(r.json(), dict)),
        ("empty", lambda r: r.json() == []),
    ],
)
def test_bad_listing_modes_do_not_consume_by_default(
    seeded_sandbox: SandboxServer, mode: str, check: Callable[[httpx.Response], bool]
) -> None:
    seeded_sandbox.configure(listing_mode=mode)
    with sandbox_client(seeded_sandbox) as client:
        response = client.get("/datacenter/exports", params={"status": "NotDelivered"})
        assert response.status_code == 200
        assert check(response)
        if mode == "malformed_json":
            with pytest.raises(ValueError):
                response.json()
        seeded_sandbox.configure(listing_mode="normal")
        assert len(listing(client, status="NotDelivered")) == 6


def test_bad_listing_can_consume_like_a_server_that_broke_mid_answer(seeded_sandbox: SandboxServer) -> None:
    seeded_sandbox.configure(listing_mode="malformed_json", bad_listing_consumes=True)
    with sandbox_client(seeded_sandbox) as client:
        client.get("/datacenter/exports", params={"status": "NotDelivered"})
        seeded_sandbox.configure(listing_mode="normal")
        assert listing(client, status="NotDelivered") == []
        assert len(listing(client, status="Delivered")) == 6


def test_download_url_is_one_time_and_serves_exact_bytes(encoura_sandbox: SandboxServer) -> None:
    content = '"Encoura ID","ZIP"\r\n"00012345","01002"\r\n"José","07102"\r\n'.encode()
    uid = encoura_sandbox.add_export("prospect", "Prospects 2026.csv", content)
    with sandbox_client(encoura_sandbox) as client:
        url = download_url(client, uid)

    parts = urlsplit(url)
    assert parts.path.endswith("/prospect/Prospects%202026.csv")
    assert {"AWSAccessKeyId", "Expires", "Signature"} <= {p.split("=")[0] for p in parts.query.split("&")}
    first = httpx.get(url)
    assert first.status_code == 200
    assert first.content == content
    assert int(first.headers["content-length"]) == len(content)
    assert first.headers["etag"] == f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'

    again = httpx.get(url)
    assert again.status_code == 403
    assert "<Code>AccessDenied</Code>" in again.text
    assert encoura_sandbox.state.s3_gets[uid] == 1
    assert encoura_sandbox.state.download_url_requests[uid] == 1


def test_each_download_url_request_gives_a_fresh_url(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    with sandbox_client(encoura_sandbox) as client:
        first, second = download_url(client, uid), download_url(client, uid)
    assert first != second
    assert httpx.get(first).status_code == 200
    assert httpx.get(second).status_code == 200
    assert encoura_sandbox.state.download_url_requests[uid] == 2


def test_expired_url_is_refused_with_s3s_message(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(url_ttl_seconds=0)
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    with sandbox_client(encoura_sandbox) as client:
        url = download_url(client, uid)
    response = httpx.get(url)
    assert response.status_code == 403
    assert "<Message>Request has expired</Message>" in response.text


def test_tampered_or_unsigned_urls_are_refused(encoura_sandbox: SandboxServer) -> None:
    uid = encoura_sandbox.add_export("inquiry", "a.csv", b"h\r\n")
    with sandbox_client(encoura_sandbox) as client:
        url = download_url(client, uid)
    assert httpx.get(url.replace("/a.csv", "/b.csv")).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403
    assert httpx.get(url).status_code == 200  # the failed attempts did not spend it
    assert encoura_sandbox.state.s3_rejected == {"SignatureDoesNotMatch": 1, "AccessDenied": 1}


@pytest.mark.parametrize("header", [{"Authorization": "Bearer x"}, {"x-api-key": "sandbox-api-key-0000"}])
def test_s3_rejects_api_headers_without_spending_the_url(
    encoura_sandbox: SandboxServer, header: dict[str, str]
) -> None:
    uid = encoura_sandbox.add_export("inquiry", content=b"h\r\nrow\r\n")
    with sandbox_client(encoura_sandbox) as client:
        url = download_url(client, uid)
    refused = httpx.get(url, headers=header)
    assert refused.status_code == 400
    assert "<Code>InvalidArgument</Code>" in refused.text
    assert "Only one auth mechanism allowed" in refused.text
    assert httpx.get(url).status_code == 200


def test_unknown_export_uid_is_404(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        response = client.get("/datacenter/exports/00000000-0000-4000-8000-000000000000/download")
    assert response.status_code == 404
    assert "00000000-0000-4000-8000-000000000000" in response.json()["message"]


def test_truncated_download_breaks_the_client_and_spends_the_url(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(truncate_rate=1.0)
    uid = encoura_sandbox.add_export("prospect", size=300_000)
    with sandbox_client(encoura_sandbox) as client:
        url = download_url(client, uid)

    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == 300_000
        for chunk in response.iter_bytes():
            received += chunk
    assert 0 < len(received) < 300_000
    assert httpx.get(url).status_code == 403
    assert encoura_sandbox.state.s3_truncated[uid] == 1


def test_seeded_exports_keep_same_names_in_different_products_apart(seeded_sandbox: SandboxServer) -> None:
    with sandbox_client(seeded_sandbox) as client:
        entries = [e for e in listing(client, status="NotDelivered") if e["productKey"] in ("inquiry", "declared")]
        urls = {str(e["productKey"]): download_url(client, str(e["uid"])) for e in entries}

    assert urlsplit(urls["inquiry"]).path.endswith("/inquiry/export.csv")
    assert urlsplit(urls["declared"]).path.endswith("/declared/export.csv")
    bodies = {product: httpx.get(url).content for product, url in urls.items()}
    assert bodies["inquiry"] != bodies["declared"]
    assert bodies["inquiry"].startswith(b'"Encoura ID"')
    act_names = [e.filename for e in seeded_sandbox.state.exports.values() if e.product_key == "score-reporter"]
    assert len(act_names) == 2
    assert all(n.startswith("ACT-SANDBOX-UNIVERSITY-") and n.endswith(".csv") for n in act_names)


def test_sample_files_keep_leading_zeros_as_quoted_text(seeded_sandbox: SandboxServer) -> None:
    prospect = next(e for e in seeded_sandbox.state.exports.values() if e.filename == "Prospects 2026.csv")
    lines = prospect.content.decode("utf-8").split("\r\n")
    assert lines[0].startswith('"Encoura ID","First Name"')
    assert any(',"0' in line for line in lines[1:])  # a quoted value with a leading zero (ZIP or ID)
    assert len([ln for ln in lines[1:] if ln]) == 120
