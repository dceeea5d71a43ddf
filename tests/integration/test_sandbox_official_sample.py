"""The official NRCCUA sample (github nrccua/file_export_sample) must work against the sandbox.

This replays its request shapes with `requests`, one for one: a session carrying only x-api-key,
a login body posted as `data=json.dumps(...)` (so no Content-Type), the token set as
`Authorization: JWT <token>` on the session, Organization passed per call, and the download done
with a plain `requests.get` outside the session. If the sandbox were stricter or looser than the
real API in any of these, this test (not a customer) would notice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import requests

from sandbox.encoura import SandboxServer


@pytest.mark.parametrize("scheme", ["JWT", "Bearer"])  # the sample moved from JWT to Bearer in 2025
def test_official_sample_request_shapes(seeded_sandbox: SandboxServer, scheme: str) -> None:
    creds = seeded_sandbox.credentials
    url, org = seeded_sandbox.base_url, creds["organization_uid"]
    payload = {"userName": creds["username"], "password": creds["password"], "acceptedTerms": True}

    session = requests.Session()
    session.headers.update({"x-api-key": creds["api_key"]})
    login = session.post(f"{url}/login", data=json.dumps(payload))
    assert "Content-Type" not in login.request.headers
    response_json = login.json()
    assert "sessionToken" in response_json
    session.headers.update({"Authorization": f"{scheme} {response_json['sessionToken']}"})

    exports = session.get(
        f"{url}/datacenter/exports",
        params={"status": "NotDelivered", "productKey": "score-reporter"},
        headers={"Organization": org},
    ).json()
    download_urls = []
    for export in exports:
        if "uid" in export:
            answer = session.get(f"{url}/datacenter/exports/{export['uid']}/download", headers={"Organization": org})
            if "downloadUrl" in answer.json():
                download_urls.append(answer.json()["downloadUrl"])
    assert len(download_urls) == 2

    expected = {e.filename: e.content for e in seeded_sandbox.state.exports.values()}
    for file_url in download_urls:
        name = unquote(os.path.basename(urlparse(file_url).path))
        download = requests.get(file_url, allow_redirects=True, stream=True, timeout=30)  # not the session
        assert download.ok
        assert b"".join(download.iter_content(chunk_size=1024)) == expected[name]
        assert name.startswith("ACT-")


def test_official_upload_sample_end_to_end(encoura_sandbox: SandboxServer, tmp_path: Path) -> None:
    """nrccua/file_upload_sample, one request for one: `requests.post(..., json=...)` with NO x-api-key at
    login nor on /files/upload, `Authorization: JWT <token>` and Organization per call, then the presigned
    POST with `data=fields, files={'file': f}` expecting 204. `originalFileName` names the stored object
    (the sample: "Signed URL will be generated to save file with this name")."""
    creds = encoura_sandbox.credentials
    url, org = encoura_sandbox.base_url, creds["organization_uid"]
    file_path = tmp_path / "sample.csv"
    file_path.write_bytes(b'StudentID,FirstName,LastName\n000123,Ana,Lopez\n')

    auth_response = requests.post(
        f"{url}/login", json={"userName": creds["username"], "password": creds["password"], "acceptedTerms": True},
        timeout=30,  # the only change from the sample: a test must not hang
    )
    assert "x-api-key" not in auth_response.request.headers
    assert auth_response.status_code == 200, auth_response.text  # was 403 -> "Authentication failed."
    auth_token = auth_response.json()["sessionToken"]

    upload_details = requests.post(
        f"{url}/files/upload",
        headers={"Authorization": f"JWT {auth_token}", "Organization": org},
        json={
            "fileName": "sample.csv",
            "productType": "enrollment",
            "fileDescription": "Some description for this file",
            "originalFileName": "testFile.csv",
        },
        timeout=30,
    )
    assert upload_details.status_code == 200, upload_details.text
    pre_signed_data = upload_details.json()
    with open(file_path, "rb") as file:
        fields = pre_signed_data["fields"]
        response = requests.post(pre_signed_data["url"], data=fields, files={"file": file}, timeout=30)
    assert response.status_code == 204, response.text  # the sample prints "File uploaded successfully."

    key = pre_signed_data["fields"]["key"]
    assert key.split("/")[-1].startswith("testFile.") and key.endswith(".csv")
    (record,) = encoura_sandbox.state.uploads.values()
    assert record.uploaded and record.file_name == "sample.csv" and record.original_file_name == "testFile.csv"
    (received,) = encoura_sandbox.state.uploads_received
    assert received.file_bytes == file_path.read_bytes()


def test_wrong_api_key_still_refused(encoura_sandbox: SandboxServer) -> None:
    """Accepting a missing key must not mean accepting any key."""
    creds = encoura_sandbox.credentials
    payload = {"userName": creds["username"], "password": creds["password"], "acceptedTerms": True}
    url = f"{encoura_sandbox.base_url}/login"
    response = requests.post(url, json=payload, headers={"x-api-key": "nope"}, timeout=30)
    assert response.status_code == 403
