"""Fixtures for the reliability suite: a rig wired to the sandbox and real destinations on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.encoura import SandboxServer
from tests.reliability.harness import DirView, ImportedView, Rig, Zygote, local_env, sftp_env
from tests.support.fault_proxy import FaultProxy


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: fault, crash and bad-input scenarios (tests/reliability)")


@pytest.fixture
def sftp_proxy(sftp_server) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    """A FaultProxy in front of the SFTP test server."""
    with FaultProxy("127.0.0.1", sftp_server.port) as proxy:
        yield proxy


@pytest.fixture
def rig(tmp_path: Path, encoura_sandbox: SandboxServer, sftp_server, sftp_proxy: FaultProxy) -> Rig:  # type: ignore[no-untyped-def]
    """Sandbox -> (SFTP through the fault proxy, a local share); fresh state dir; sweep grace 0."""
    (sftp_server.root / "incoming").mkdir()
    share = tmp_path / "share"
    share.mkdir()  # a destination root must exist (a missing one is a settings error)
    env = {**sftp_env("slate", sftp_server, port=sftp_proxy.port), **local_env("share", share)}
    return Rig(
        sandbox=encoura_sandbox,
        state_dir=tmp_path / "state",
        views=[DirView("slate", sftp_server.root / "incoming"), DirView("share", share)],
        env=env,
    )


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


@pytest.fixture
def slate_importer(rig: Rig, sftp_server):  # type: ignore[no-untyped-def]
    """Switch Slate's importer on beside the rig's SFTP server: final-named files leave
    /incoming/ for /incoming/processed/ at random moments; the slate view counts every arrival."""
    importer = sftp_server.start_importer("incoming", max_delay=0.3)
    rig.views = [ImportedView("slate", v.root, importer) if v.name == "slate" else v for v in rig.views]
    return importer
