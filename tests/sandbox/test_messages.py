"""Messages, updates, usernames and contacts between real Telethon clients."""

from __future__ import annotations

import asyncio

from telethon import TelegramClient, events, functions, types
from telethon.tl.custom import Button

from tgsip.sandbox import Button as SandboxButton
from tgsip.sandbox import Sandbox

from .conftest import TIMEOUT, ClientFactory, login


async def _signed_in(sandbox: Sandbox, make_client: ClientFactory, phone: str) -> TelegramClient:
    client = await make_client()
    await login(client, sandbox, phone)
    return client


async def test_send_and_receive(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = sandbox.create_user("15551001", "Alice", username="alice")
    bob = sandbox.create_user("15551002", "Bob", username="bob")
    ca = await _signed_in(sandbox, make_client, "15551001")
    cb = await _signed_in(sandbox, make_client, "15551002")

    got: asyncio.Queue[events.NewMessage.Event] = asyncio.Queue()

    @cb.on(events.NewMessage(incoming=True))
    async def on_message(event: events.NewMessage.Event) -> None:
        await got.put(event)

    sent = await asyncio.wait_for(ca.send_message("bob", "hello bob"), TIMEOUT)
    assert sent.out
    assert sent.text == "hello bob"
    event = await asyncio.wait_for(got.get(), TIMEOUT)
    assert event.raw_text == "hello bob"
    assert event.sender_id == alice.id

    # A reply with an inline keyboard, and its buttons survive the round trip.
    await asyncio.wait_for(
        cb.send_message(alice.id, "pick one", buttons=[[Button.inline("Yes", b"y")]]), TIMEOUT
    )
    history = await asyncio.wait_for(ca.get_messages(bob.id, limit=5), TIMEOUT)
    assert [m.text for m in history] == ["pick one", "hello bob"]
    assert history[0].buttons[0][0].data == b"y"

    # A scripted user's message reaches a live client, including inline buttons.
    carol = sandbox.create_user("15551003", "Carol")
    await carol.send_message(bob, "from a script", buttons=[[SandboxButton("Go", data=b"go")]])
    event = await asyncio.wait_for(got.get(), TIMEOUT)
    assert event.raw_text == "from a script"
    assert event.message.reply_markup.rows[0].buttons[0].type.data == b"go"

    dialogs = await asyncio.wait_for(cb.get_dialogs(), TIMEOUT)
    assert {d.id for d in dialogs} >= {alice.id, carol.id}

    deleted = await asyncio.wait_for(cb.delete_messages(alice.id, [history[0].id]), TIMEOUT)
    assert deleted[0].pts_count in (0, 1)
    full = await asyncio.wait_for(cb(functions.users.GetFullUserRequest(alice.id)), TIMEOUT)
    assert full.users[0].id == alice.id


async def test_resolve_and_contacts(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sandbox.create_user("15552001", "Dora")
    eve = sandbox.create_user("15552002", "Eve", username="eve_sandbox")
    client = await _signed_in(sandbox, make_client, "15552001")
    resolved = await asyncio.wait_for(
        client(functions.contacts.ResolveUsernameRequest("eve_sandbox")), TIMEOUT
    )
    assert resolved.peer.user_id == eve.id
    assert resolved.users[0].phone is None  # not a contact yet
    entity = await asyncio.wait_for(client.get_entity("@eve_sandbox"), TIMEOUT)
    assert entity.id == eve.id
    imported = await asyncio.wait_for(
        client(
            functions.contacts.ImportContactsRequest(
                [
                    types.InputPhoneContact(
                        client_id=7, phone="+15552002", first_name="E", last_name=""
                    ),
                    types.InputPhoneContact(
                        client_id=8, phone="+15559999", first_name="X", last_name=""
                    ),
                ]
            )
        ),
        TIMEOUT,
    )
    assert [(c.user_id, c.client_id) for c in imported.imported] == [(eve.id, 7)]
    assert imported.users[0].phone == "15552002"
    contacts = await asyncio.wait_for(client(functions.contacts.GetContactsRequest(0)), TIMEOUT)
    assert [c.user_id for c in contacts.contacts] == [eve.id]


async def test_catch_up_after_reconnect(sandbox: Sandbox, make_client: ClientFactory) -> None:
    frank = sandbox.create_user("15553001", "Frank")
    grace = sandbox.create_user("15553002", "Grace")
    client = await _signed_in(sandbox, make_client, "15553002")
    state = await asyncio.wait_for(client(functions.updates.GetStateRequest()), TIMEOUT)
    await asyncio.wait_for(client.disconnect(), TIMEOUT)
    await frank.send_message(grace, "while you were away")
    second = await frank.send_message(grace, "and again")
    sandbox.edit_message(frank, second.id, text="and again, edited")
    await asyncio.wait_for(client.connect(), TIMEOUT)
    diff = await asyncio.wait_for(
        client(functions.updates.GetDifferenceRequest(pts=state.pts, date=state.date, qts=0)),
        TIMEOUT,
    )
    assert [m.message for m in diff.new_messages] == ["while you were away", "and again, edited"]
    assert [type(u).__name__ for u in diff.other_updates] == ["UpdateEditMessage"]
    assert diff.other_updates[0].message.edit_date is not None
    assert diff.state.pts == state.pts + 3


async def test_events_after_reconnect_come_from_get_difference(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    """Telethon's own update machinery fills the gap with getDifference after a reconnect."""
    henry = sandbox.create_user("15553101", "Henry")
    ida = sandbox.create_user("15553102", "Ida")
    client = await _signed_in(sandbox, make_client, "15553102")
    got: asyncio.Queue[str] = asyncio.Queue()

    @client.on(events.NewMessage(incoming=True))
    async def on_message(event: events.NewMessage.Event) -> None:
        await got.put(event.raw_text)

    await henry.send_message(ida, "live")
    assert await asyncio.wait_for(got.get(), TIMEOUT) == "live"
    await asyncio.wait_for(client.disconnect(), TIMEOUT)
    await henry.send_message(ida, "missed one")
    await henry.send_message(ida, "missed two")
    await asyncio.wait_for(client.connect(), TIMEOUT)
    # A live update reveals the pts gap; the client fetches the difference itself.
    await henry.send_message(ida, "after")
    texts = [await asyncio.wait_for(got.get(), TIMEOUT) for _ in range(3)]
    assert sorted(texts) == ["after", "missed one", "missed two"]


async def test_outgoing_message_reaches_senders_other_clients(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    sandbox.create_user("15553201", "Jack")
    sandbox.create_user("15553202", "Kim", username="kim")
    phone_a = await _signed_in(sandbox, make_client, "15553201")
    phone_b = await _signed_in(sandbox, make_client, "15553201")
    got: asyncio.Queue[events.NewMessage.Event] = asyncio.Queue()

    @phone_b.on(events.NewMessage(outgoing=True))
    async def on_message(event: events.NewMessage.Event) -> None:
        await got.put(event)

    await asyncio.wait_for(phone_a.send_message("kim", "from phone a"), TIMEOUT)
    event = await asyncio.wait_for(got.get(), TIMEOUT)
    assert event.raw_text == "from phone a"
    assert event.out
