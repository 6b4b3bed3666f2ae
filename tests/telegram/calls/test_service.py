"""CallService against the sandbox with real Telethon clients, for what needs no media path:
DH config caching, resolving users, refusals and flood waits, declined, missed and unanswered
calls. (Connected calls with audio are in ``test_sandbox_netns.py``.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telethon.tl import functions, types

from tests.sandbox.conftest import ClientFactory
from tests.telegram.calls.world import World, make_world, port
from tgsip.sandbox import Sandbox
from tgsip.sandbox.calls import CallState, DiscardReason
from tgsip.sandbox.server import RpcError
from tgsip.telegram.calls import dh
from tgsip.telegram.calls.call import EndReason, State
from tgsip.telegram.calls.service import CallFloodWait, CallRefused, CallServiceError

pytestmark = pytest.mark.timeout(60)
T = 10.0


async def test_dh_config_is_validated_and_cached(world: World) -> None:
    params, random1 = await world.gateway.dh_config()
    assert params.p == dh.TELEGRAM_P
    assert params.g == 3
    again, random2 = await world.gateway.dh_config()
    assert again is params  # dhConfigNotModified: the cached, validated parameters
    assert len(random1) == len(random2) == 256
    assert random1 != random2


async def test_unknown_users_are_refused(world: World) -> None:
    with pytest.raises(CallRefused, match=r"^USERNAME_NOT_OCCUPIED") as exc:
        await world.gateway.call("@nobody_here", port(8000))
    assert exc.value.name == "USERNAME_NOT_OCCUPIED"
    with pytest.raises(CallRefused, match="USER_NOT_FOUND"):
        await world.gateway.call("+19999999999", port(8000))
    with pytest.raises(CallRefused, match="USER_NOT_FOUND"):
        await world.gateway.call("bob", port(8000))
    with pytest.raises(CallRefused, match="USER_NOT_FOUND"):
        await world.gateway.call(987654321, port(8000))
    assert world.media.calls == {}


async def test_privacy_refusal_keeps_telegrams_error_name(world: World) -> None:
    await world.peer.client(
        functions.account.SetPrivacyRequest(
            key=types.InputPrivacyKeyPhoneCall(), rules=[types.InputPrivacyValueDisallowAll()]
        )
    )
    with pytest.raises(CallRefused) as exc:
        await world.gateway.call("@bob", port(8000))
    assert exc.value.name == "USER_PRIVACY_RESTRICTED"
    assert world.media.calls == {}
    assert world.gateway.active == []


async def test_flood_wait_becomes_a_typed_error(world: World) -> None:
    """The sandbox answers requestCall with FLOOD_WAIT_7 (an injected refusal on the real wire);
    the caller gets the wait, and nothing of the call is left behind."""
    real = world.sandbox.api.dispatch

    async def flooding(conn: Any, request: Any) -> Any:
        inner = getattr(request, "query", request)
        if isinstance(inner, functions.phone.RequestCallRequest):
            raise RpcError(420, "FLOOD_WAIT_7")
        return await real(conn, request)

    world.sandbox.api.dispatch = flooding  # type: ignore[method-assign]
    try:
        with pytest.raises(CallFloodWait) as exc:
            await world.gateway.call("@bob", port(8000))
    finally:
        world.sandbox.api.dispatch = real  # type: ignore[method-assign]
    assert exc.value.seconds == 7
    assert isinstance(exc.value, CallServiceError)
    assert "retry after 7 s" in str(exc.value)
    assert world.media.calls == {}
    assert world.gateway.active == []


async def test_declined_call_is_busy(world: World) -> None:
    world.peer.answer = "decline"
    handle = await asyncio.wait_for(world.gateway.call("@bob", port(8000)), T)
    end = await handle.wait_ended(T)
    assert end.reason is EndReason.BUSY
    assert end.by_remote
    assert end.duration == 0
    assert world.media.calls == {}
    call_id = handle.call.call_id
    assert call_id is not None
    server = world.sandbox.call(call_id)
    assert server is not None
    assert server.reason is DiscardReason.BUSY


async def test_gateway_without_incoming_callback_is_busy(world: World) -> None:
    world.gateway.on_incoming = None
    handle = await asyncio.wait_for(world.peer.call("@gateway"), T)
    end = await handle.wait_ended(T)
    assert end.reason is EndReason.BUSY
    assert end.by_remote


async def test_caller_cancel_while_ringing_is_missed(world: World) -> None:
    world.peer.answer = "ignore"
    handle = await asyncio.wait_for(world.gateway.call("@bob", port(8000)), T)
    await asyncio.wait_for(handle.ringing.wait(), T)
    theirs = await asyncio.wait_for(world.peer.incoming.get(), T)
    assert theirs.call.state is State.RINGING
    handle.hangup()
    assert (await handle.wait_ended(T)).reason is EndReason.MISSED
    end = await theirs.wait_ended(T)
    assert end.reason is EndReason.MISSED
    assert end.by_remote


async def test_unanswered_call_is_missed_after_ring_timeout(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    w = await make_world(sandbox, make_client, ring_timeout=1.0)
    try:
        w.peer.answer = "ignore"
        loop = asyncio.get_running_loop()
        started = loop.time()
        handle = await asyncio.wait_for(w.gateway.call("@bob", port(8000)), T)
        await asyncio.wait_for(handle.ringing.wait(), T)
        theirs = await asyncio.wait_for(w.peer.incoming.get(), T)
        end = await handle.wait_ended(T)
        assert 0.9 <= loop.time() - started < 5.0
        assert end.reason is EndReason.MISSED
        assert end.error == "ring timeout"
        peer_end = await theirs.wait_ended(T)
        assert peer_end.reason is EndReason.MISSED
        assert peer_end.by_remote
        call_id = handle.call.call_id
        assert call_id is not None
        server = await w.sandbox.wait_call(call_id, (CallState.DISCARDED,), T)
        assert server.reason is DiscardReason.MISSED
        assert w.media.calls == {}
    finally:
        await w.close()
