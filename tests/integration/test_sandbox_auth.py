"""The sandbox enforces authentication the way the real gateway does, so client auth bugs surface in tests."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.encoura import SANDBOX_CREDENTIALS, SandboxConfig, SandboxServer
from tests.support.encoura_sandbox import sandbox_client

CREDS = SANDBOX_CREDENTIALS
LOGIN_BODY = {"userName": CREDS["username"], "password": CREDS["password"], "acceptedTerms": True}
API_KEY = {"x-api-key": CREDS["api_key"]}


def login(sb: SandboxServer, body: object = LOGIN_BODY, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{sb.base_url}/login", json=body, headers=API_KEY if headers is None else headers)


def test_login_returns_token_and_organizations(encoura_sandbox: SandboxServer) -> None:
    response = login(encoura_sandbox)

    assert response.status_code == 200
    body = response.json()
    assert body["sessionToken"]
    orgs = body["user"]["organizations"]
    assert [o["uid"] for o in orgs] == [CREDS["organization_uid"]]
    assert set(orgs[0]) == {"uid", "name", "fice", "stateCode"}
    assert encoura_sandbox.state.login_attempts == 1


def test_login_body_without_content_type_is_parsed(encoura_sandbox: SandboxServer) -> None:
    # The official sample posts `data=json.dumps(payload)`: no Content-Type header at all.
    raw = httpx.Request(
        "POST", f"{encoura_sandbox.base_url}/login", content=json.dumps(LOGIN_BODY).encode(), headers=API_KEY
    )
    assert "content-type" not in raw.headers
    with httpx.Client() as client:
        response = client.send(raw)

    assert response.status_code == 200
    assert response.json()["sessionToken"]


def test_login_with_email_field_is_accepted(encoura_sandbox: SandboxServer) -> None:
    body = {"email": CREDS["username"], "password": CREDS["password"], "acceptedTerms": True}
    assert login(encoura_sandbox, body).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {**LOGIN_BODY, "password": "wrong"},
        {**LOGIN_BODY, "userName": "someone-else@example.edu"},
    ],
    ids=["wrong-password", "wrong-user"],
)
def test_wrong_credentials_are_401_and_counted(encoura_sandbox: SandboxServer, body: dict[str, object]) -> None:
    response = login(encoura_sandbox, body)

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid username or password"
    assert encoura_sandbox.state.login_attempts == 1
    assert encoura_sandbox.state.login_failures == 1


def test_login_needs_accepted_terms_and_a_json_body(encoura_sandbox: SandboxServer) -> None:
    assert login(encoura_sandbox, {**LOGIN_BODY, "acceptedTerms": False}).status_code == 400
    garbled = httpx.post(f"{encoura_sandbox.base_url}/login", content=b"userName=x", headers=API_KEY)
    assert garbled.status_code == 400
    assert "json" in garbled.json()["message"]
    assert encoura_sandbox.state.login_attempts == 2  # malformed attempts count too


def test_require_content_type_refuses_bare_bodies(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(require_content_type=True)
    bare = httpx.post(f"{encoura_sandbox.base_url}/login", content=json.dumps(LOGIN_BODY).encode(), headers=API_KEY)
    assert bare.status_code == 415
    assert login(encoura_sandbox).status_code == 200


@pytest.mark.parametrize("api_key", [None, "not-the-key"], ids=["missing", "wrong"])
def test_every_call_needs_the_api_key(encoura_sandbox: SandboxServer, api_key: str | None) -> None:
    # A missing key is refused only with require_api_key (by default it is accepted: the official upload
    # sample sends none and works against Encoura); a wrong key is refused always.
    encoura_sandbox.configure(require_api_key=True)
    headers = {} if api_key is None else {"x-api-key": api_key}
    response = login(encoura_sandbox, headers=headers)

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    with sandbox_client(encoura_sandbox) as client:
        del client.headers["x-api-key"]
        if api_key:
            client.headers["x-api-key"] = api_key
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 403


def test_missing_api_key_is_accepted_by_default(encoura_sandbox: SandboxServer) -> None:
    assert login(encoura_sandbox, headers={}).status_code == 200
    assert login(encoura_sandbox, headers={"x-api-key": "not-the-key"}).status_code == 403


@pytest.mark.parametrize("scheme", ["Bearer", "JWT"])
def test_both_authorization_schemes_are_accepted(encoura_sandbox: SandboxServer, scheme: str) -> None:
    with sandbox_client(encoura_sandbox, scheme=scheme) as client:
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 200


def test_calls_after_login_need_token_and_organization(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        url = "/datacenter/exports"
        params = {"status": "Delivered"}
        assert client.get(url, params=params, headers={"Authorization": ""}).status_code == 401
        assert client.get(url, params=params, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert client.get(url, params=params, headers={"Authorization": "Basic abc"}).status_code == 401

        unknown_org = client.get(url, params=params, headers={"Organization": "11111111-2222-4333-8444-555555555555"})
        assert unknown_org.status_code == 403
        assert "11111111-2222-4333-8444-555555555555" in unknown_org.json()["message"]
        del client.headers["Organization"]
        assert client.get(url, params=params).status_code == 403


def test_expired_tokens_are_401_until_refreshed_or_logged_in_again(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        encoura_sandbox.expire_tokens()
        response = client.get("/datacenter/exports", params={"status": "Delivered"})
        assert response.status_code == 401
        assert "expired" in response.json()["message"]
        assert client.get("/refresh-token").status_code == 401  # refresh needs a still-valid token


def test_token_ttl_zero_expires_at_once(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(token_ttl_seconds=0)
    with sandbox_client(encoura_sandbox) as client:
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 401


def test_refresh_token_returns_a_new_working_token(encoura_sandbox: SandboxServer) -> None:
    with sandbox_client(encoura_sandbox) as client:
        old = client.headers["Authorization"].split(" ", 1)[1]
        response = client.get("/refresh-token", headers={"Organization": ""})  # refresh needs no Organization
        assert response.status_code == 200
        new = response.json()["sessionToken"]
        assert new != old
        client.headers["Authorization"] = f"Bearer {new}"
        assert client.get("/datacenter/exports", params={"status": "Delivered"}).status_code == 200
    assert encoura_sandbox.state.refresh_count == 1


def test_several_organizations_are_listed_and_each_is_usable() -> None:
    with SandboxServer(SandboxConfig(organizations=3)) as sb:
        orgs = login(sb).json()["user"]["organizations"]
        assert len(orgs) == 3
        assert len({o["uid"] for o in orgs}) == 3
        other = orgs[2]["uid"]
        uid = sb.add_export("inquiry", "third.csv", b"a\r\n1\r\n", organization_uid=other)
        with sandbox_client(sb, organization=other) as client:
            listed = client.get("/datacenter/exports", params={"status": "NotDelivered"}).json()
        with sandbox_client(sb) as client:
            assert client.get(f"/datacenter/exports/{uid}/download").status_code == 404  # another org's export
    assert [e["uid"] for e in listed] == [uid]
    assert listed[0]["organizationUid"] == other


def test_quoted_session_token_must_be_unquoted_by_the_client(encoura_sandbox: SandboxServer) -> None:
    encoura_sandbox.configure(quote_session_token=True)
    token = login(encoura_sandbox).json()["sessionToken"]
    assert token.startswith('"')
    assert token.endswith('"')
    headers = {**API_KEY, "Organization": CREDS["organization_uid"]}
    url = f"{encoura_sandbox.base_url}/datacenter/exports?status=Delivered"
    assert httpx.get(url, headers={**headers, "Authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.get(url, headers={**headers, "Authorization": f"Bearer {token.strip(chr(34))}"}).status_code == 200


def test_unrouted_paths_answer_like_api_gateway(encoura_sandbox: SandboxServer) -> None:
    # The docs' table shows /datacenter/<uid>/download (without /exports): the gateway does not route it.
    with sandbox_client(encoura_sandbox) as client:
        response = client.get("/datacenter/some-uid/download")
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
