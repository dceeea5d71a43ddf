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
