"""Call tests: the ``netns`` marker skips unless the run is inside ``scripts/netns-run``."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def in_call_namespace() -> bool:
    """Whether an interface other than ``lo`` carries 127.0.0.2 (what ``scripts/netns-run``
    sets up, and what WebRTC needs to gather a candidate on loopback)."""
    ip = shutil.which("ip")
    if ip is None:
        return False
    out = subprocess.run(
        [ip, "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False, timeout=5
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] != "lo" and fields[3].startswith("127.0.0.2/"):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("netns") for item in items):
        return
    if in_call_namespace():
        return
    skip = pytest.mark.skip(
        reason="needs a network namespace with 127.0.0.2 on a non-loopback interface "
        "(WebRTC ignores lo): run `make test-calls` (root, scripts/netns-run)"
    )
    for item in items:
        if item.get_closest_marker("netns"):
            item.add_marker(skip)


# The sandbox and real Telethon clients for it, shared with the sandbox's own tests.
from tests.sandbox.conftest import make_client, rsa_dir, sandbox  # noqa: E402
from tests.telegram.calls.world import world  # noqa: E402

__all__ = ["in_call_namespace", "make_client", "rsa_dir", "sandbox", "world"]
