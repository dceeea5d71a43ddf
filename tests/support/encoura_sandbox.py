"""Fixtures: a fresh Encoura sandbox per test, on a real loopback port (starts in well under 0.5 s).

Override `encoura_sandbox_config` in a test module (or via indirect parametrization) to start
the sandbox with faults already on; `sb.configure(...)` changes them mid-test.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.encoura import SandboxConfig, SandboxServer


@pytest.fixture
def encoura_sandbox_config(request: pytest.FixtureRequest) -> SandboxConfig:
    return getattr(request, "param", None) or SandboxConfig()


@pytest.fixture
def encoura_sandbox(encoura_sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    """An empty sandbox: tests add exactly the exports they need with `sb.add_export(...)`."""
    with SandboxServer(encoura_sandbox_config, seed_samples=False) as sb:
        yield sb


@pytest.fixture
def seeded_sandbox(encoura_sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    """A sandbox holding the standard sample exports (several products, duplicate names, spaces)."""
    with SandboxServer(encoura_sandbox_config, seed_samples=True) as sb:
        yield sb


@pytest.fixture
def encoura_sandbox_env(encoura_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The empty sandbox, with ENCOURA_* pointing at it for code that reads settings from the environment."""
    for name, value in encoura_sandbox.env().items():
        monkeypatch.setenv(name, value)
    return encoura_sandbox


def sandbox_client(sb: SandboxServer, *, scheme: str = "Bearer", organization: str | None = None) -> httpx.Client:
    """An httpx client already logged in to `sb`, with the headers every later call needs."""
    creds = sb.credentials
    response = httpx.post(
        f"{sb.base_url}/login",
        json={"userName": creds["username"], "password": creds["password"], "acceptedTerms": True},
        headers={"x-api-key": creds["api_key"]},
    )
    response.raise_for_status()
    headers = {
        "x-api-key": creds["api_key"],
        "Authorization": f"{scheme} {response.json()['sessionToken']}",
        "Organization": organization or creds["organization_uid"],
    }
    return httpx.Client(base_url=sb.base_url, headers=headers, timeout=10)
