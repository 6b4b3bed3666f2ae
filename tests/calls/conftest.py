"""End-to-end call tests: the ``netns`` marker skips them outside ``scripts/netns-run``."""

from __future__ import annotations

import pytest

from tests.telegram.calls.conftest import in_call_namespace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_call_namespace():
        return
    skip = pytest.mark.skip(
        reason="needs a network namespace with 127.0.0.2 on a non-loopback interface "
        "(WebRTC ignores lo): run `make test-calls` (root, scripts/netns-run)"
    )
    for item in items:
        if item.get_closest_marker("netns") and "tests/calls" in str(item.path):
            item.add_marker(skip)


from tests.sandbox.conftest import make_client, rsa_dir, sandbox  # noqa: E402

__all__ = ["make_client", "rsa_dir", "sandbox"]

from tests.telegram.conftest import make_gateway  # noqa: E402

__all__ += ["make_gateway"]
