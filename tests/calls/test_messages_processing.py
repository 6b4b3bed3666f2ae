"""Messages processing (product.md §11) with the real session manager on the sandbox: the text
becomes the candidate number of the next call, then the Inline bot or the Autoreply answers."""

from __future__ import annotations

import asyncio

import msgspec

from tests.telegram.conftest import Gateway, connect_session
from tgsip.callbridge import CallRouter
from tgsip.config.sessions import SessionSettings
from tgsip.sandbox import Sandbox
from tgsip.sandbox.rpc_media import InlineResult
from tgsip.sip.service import SipService
from tgsip.telegram.messages import IncomingMessage


async def wait_until(pred: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def setup(sandbox: Sandbox, make_gateway: object, settings: SessionSettings):  # type: ignore[no-untyped-def]
    account = sandbox.create_user("15554001", "Line")
    caller = sandbox.create_user("15554002", "Carla", username="carla")
    gw: Gateway = await make_gateway()  # type: ignore[operator]
    rec = (await connect_session(gw, sandbox, "+15554001")).session
    await gw.store.update_session(msgspec.structs.replace(rec, settings=settings))
    sip = SipService("127.0.0.1", udp_port=0, tcp_port=None)
    router = CallRouter(sip, gw.store, messenger=gw.manager.messenger)
    gw.manager.add_message_listener(router.on_message)
    return account, caller, rec, router, gw


async def test_autoreply_and_candidate_number(sandbox: Sandbox, make_gateway: object) -> None:
    settings = SessionSettings(
        messages_processing=True,
        autoreply_enabled=True,
        autoreply_text="Calls only, {name}. You wrote {text}.",
    )
    account, caller, rec, router, _gw = await setup(sandbox, make_gateway, settings)
    await caller.send_message(account, "2001")
    await wait_until(lambda: len(caller.history(account)) >= 2)
    texts = [m.text for m in caller.history(account)]
    assert "Calls only, Carla. You wrote 2001." in texts
    loop = asyncio.get_running_loop()
    assert router.candidates.take(rec.id, caller.id, loop.time()) == "2001"
    await router.stop()


async def test_inline_bot_answers_before_autoreply(sandbox: Sandbox, make_gateway: object) -> None:
    bot = sandbox.create_bot("crm_bot", "CRM")
    queries: list[str] = []

    def answer(query: str, user: object) -> list[InlineResult]:
        queries.append(query)
        return [InlineResult(id="r1", title="Ticket", text=f"Ticket for {query}")]

    sandbox.api.set_inline_bot(bot, answer)
    settings = SessionSettings(
        messages_processing=True,
        inline_bot_enabled=True,
        inline_bot="@crm_bot",
        inline_query="{username}:{text}",
        autoreply_enabled=True,
        autoreply_text="never sent",
    )
    account, caller, _rec, router, _gw = await setup(sandbox, make_gateway, settings)
    await caller.send_message(account, "help")
    await wait_until(lambda: len(caller.history(account)) >= 2)
    assert queries == ["carla:help"]
    texts = [m.text for m in caller.history(account)]
    assert "Ticket for carla:help" in texts
    assert "never sent" not in texts
    await router.stop()


async def test_nothing_happens_with_messages_processing_off(
    sandbox: Sandbox, make_gateway: object
) -> None:
    settings = SessionSettings(autoreply_enabled=True, autoreply_text="no")
    account, caller, rec, router, gw = await setup(sandbox, make_gateway, settings)
    heard: list[IncomingMessage] = []
    # Registered after the router's listener: when it hears the message, the router has
    # spawned its processing task.
    gw.manager.add_message_listener(heard.append)
    await caller.send_message(account, "2002")
    await wait_until(lambda: len(heard) == 1)
    await wait_until(lambda: not router._tasks)
    assert [m.text for m in caller.history(account)] == ["2002"]
    assert router.candidates.take(rec.id, caller.id, asyncio.get_running_loop().time()) == ""
    await router.stop()
