"""Upload API: file record, presigned multipart POST (fields first, file last) and the status chain."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.encoura import SandboxConfig, SandboxServer
from tests.support.encoura_sandbox import sandbox_client

Ticket = dict[str, Any]
CSV = b'"Student ID","First Name","ZIP"\r\n"00012","Zo\xc3\xab","01002"\r\n"00013","Liam","07102"\r\n'


def create(client: httpx.Client, file_name: str = "enrollment_2026.csv", product_type: str = "enrollment") -> Ticket:
    response = client.post(
        "/files/upload",
        json={
            "fileName": file_name,
            "productType": product_type,
            "dataSource": "API",
            "fileDescription": "sandbox test",
            "originalFileName": file_name,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "sandbox-boundary") -> tuple[bytes, str]:
    """A hand-built form body, so tests control the part order exactly."""
    body = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_parts(url: str, parts: list[tuple[str, bytes, str | None]]) -> httpx.Response:
    body, content_type = multipart(parts)
    return httpx.post(url, content=body, headers={"Content-Type": content_type})


def upload(ticket: Ticket, content: bytes = CSV, name: str = "enrollment_2026.csv") -> httpx.Response:
    return httpx.post(ticket["url"], data=ticket["fields"], files={"file": (name, content, "text/csv")})


def poll(client: httpx.Client, upload_id: str, times: int) -> list[str]:
    return [client.get(f"/files/{upload_id}").json()["status"] for _ in range(times)]


def test_create_returns_presigned_post_fields(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client)
    assert ticket["url"] == f"{encoura_sandbox.root_url}/_s3/uploads"
    assert ticket["fields"]["key"].endswith(".csv")
    assert "/enrollment/enrollment_2026." in ticket["fields"]["key"]
    assert {"policy", "x-amz-signature", "x-amz-credential", "x-amz-date"} <= set(ticket["fields"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fileName": "a.csv", "productType": "prospect"}, "productType must be one of"),
        ({"productType": "ematch"}, "fileName is required"),
    ],
)
def test_create_validates_its_body(encoura_sandbox: SandboxServer, body: dict[str, str], message: str) -> None:
    with sandbox_client(encoura_sandbox) as client:
        response = client.post("/files/upload", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_upload_records_field_order_and_exact_bytes(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client)
        before = poll(client, ticket["id"], 2)
    response = upload(ticket)

    assert response.status_code == 204
    assert response.content == b""
    assert before == ["uploading", "uploading"]
    [received] = encoura_sandbox.state.uploads_received
    assert received.upload_id == ticket["id"]
    assert received.field_order == list(ticket["fields"])
    assert received.fields == ticket["fields"]
    assert received.file_bytes == CSV
    assert received.file_name == "enrollment_2026.csv"


def test_file_before_fields_is_refused(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client)
    fields = [(k, v.encode(), None) for k, v in ticket["fields"].items()]
    response = post_parts(ticket["url"], [("file", CSV, "a.csv"), *fields])

    assert response.status_code == 400
    assert "<Code>InvalidArgument</Code>" in response.text
    assert "last field" in response.text
    assert encoura_sandbox.state.uploads_received == []


def test_missing_or_altered_fields_are_refused(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client)
    fields = dict(ticket["fields"])
    without_policy = [(k, v.encode(), None) for k, v in fields.items() if k != "policy"]
    altered = [(k, (v + "x" if k == "x-amz-signature" else v).encode(), None) for k, v in fields.items()]
    without_key = [(k, v.encode(), None) for k, v in fields.items() if k != "key"]

    missing = post_parts(ticket["url"], [*without_policy, ("file", CSV, "a.csv")])
    changed = post_parts(ticket["url"], [*altered, ("file", CSV, "a.csv")])
    keyless = post_parts(ticket["url"], [*without_key, ("file", CSV, "a.csv")])
    no_file = post_parts(ticket["url"], [(k, v.encode(), None) for k, v in fields.items()])
    twice = post_parts(
        ticket["url"],
        [
            ("policy", fields["policy"].encode(), None),
            *[(k, v.encode(), None) for k, v in fields.items()],
            ("file", CSV, "a.csv"),
        ],
    )

    assert missing.status_code == changed.status_code == keyless.status_code == no_file.status_code == 400
    assert "missing fields: policy" in missing.text
    assert "differ from the presigned values: x-amz-signature" in changed.text
    assert "must contain a field named 'key'" in keyless.text
    assert "exactly one file" in no_file.text
    assert twice.status_code == 400
    assert "fields sent twice: policy" in twice.text
    assert encoura_sandbox.state.uploads_received == []


def test_upload_post_must_be_multipart_and_carry_no_api_headers(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client)
    not_form = httpx.post(ticket["url"], json=ticket["fields"])
    assert not_form.status_code == 400
    assert "multipart/form-data" in not_form.text
    with_key = httpx.post(
        ticket["url"], data=ticket["fields"], files={"file": ("a.csv", CSV)}, headers={"x-api-key": "k"}
    )
    assert with_key.status_code == 400
    assert "Only one auth mechanism allowed" in with_key.text


@pytest.mark.parametrize(
    ("file_name", "chain"),
    [
        ("enrollment_2026.csv", ["analyzing", "enqueued", "cleansing", "ingesting", "processing", "done"]),
        ("students_fail.csv", ["analyzing", "failure"]),
        ("needs_mapping.csv", ["analyzing", "fields_mapping_required"]),
        ("please_cancel.csv", ["analyzing", "fields_mapping_required", "canceled"]),
    ],
)
def test_status_chain_by_scenario(encoura_sandbox: SandboxServer, file_name: str, chain: list[str]) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client, file_name)
        assert upload(ticket, name=file_name).status_code == 204
        seen = poll(client, ticket["id"], len(chain) + 2)
        record = client.get(f"/files/{ticket['id']}").json()

    assert seen == [*chain, chain[-1], chain[-1]]  # terminal statuses stay put
    assert record["fileName"] == file_name
    assert record["recordVolume"] == 2
    assert {"id", "status", "meta", "fieldsMap", "valuesMap", "dataSource", "error", "uploadDate"} <= set(record)
    if chain[-1] == "failure":
        assert record["error"] == "Row 3: missing required column 'Student ID'"
    else:
        assert record["error"] is None


@pytest.mark.parametrize("encoura_sandbox_config", [SandboxConfig(upload_status_steps=2)], indirect=True)
def test_upload_status_steps_holds_each_status(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        ticket = create(client, "x_fail.csv", "affinity")
        upload(ticket)
        assert poll(client, ticket["id"], 5) == ["analyzing", "analyzing", "failure", "failure", "failure"]


def test_unknown_upload_id_is_404(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        assert client.get("/files/not-an-id").status_code == 404
