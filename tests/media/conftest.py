"""Fixtures for media tests: a UDP peer and a running engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.media.helpers import UdpPeer
from tgsip.media import EngineConfig, MediaEngine


@pytest.fixture
def peer() -> Iterator[UdpPeer]:
    p = UdpPeer()
    yield p
    p.close()


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    e = MediaEngine(EngineConfig(workers=2, port_min=41000, port_max=43999))
    e.attach()
    try:
        yield e
    finally:
        e.close()
