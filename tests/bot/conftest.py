"""The real aiogram bot, polling the sandbox's Bot API, with a real SQLite ConfigStore.

Scripted sandbox users talk to it; helpers wait (bounded in time) for the bot's replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from tgsip.bot import LineStateView, create_dispatcher
from tgsip.bot.services import SessionService
from tgsip.config.sessions import SessionRecord, SessionState
from tgsip.sandbox import Sandbox, ScriptedUser, trust_key
from tgsip.sandbox.world import CallbackQuery, Message, User
from tgsip.storage import ConfigStore, SecretBox

TIMEOUT = 15.0


@pytest.fixture(scope="session")
def rsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bot-sandbox-key")


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path, rsa_dir: Path) -> AsyncIterator[Sandbox]:
    key = rsa_dir / "rsa_key.pem"
    data = tmp_path / "sandbox"
    data.mkdir()
    if key.exists():
        (data / "rsa_key.pem").write_bytes(key.read_bytes())
    sb = Sandbox(data)
    if not key.exists():
        key.write_bytes((data / "rsa_key.pem").read_bytes())
    trust_key(sb.public_key_pem)
    await sb.start("127.0.0.1", 0)
    yield sb
    await sb.stop()
    sb.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    st = ConfigStore.open_sqlite(tmp_path / "config.sqlite3", SecretBox(os.urandom(32)))
    yield st
    st.close()


class DictLineStates:
    """Live SIP line state fed by the test (stands for the SIP service's registrations)."""

    def __init__(self) -> None:
        self.states: dict[int, LineStateView] = {}

    def line_state(self, line_id: int) -> LineStateView | None:
        return self.states.get(line_id)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Chat:
    """One scripted user's private chat with the bot."""

    sandbox: Sandbox
    user: ScriptedUser
    bot_user: User
    seen: int = 0

    def incoming(self) -> list[Message]:
        return [m for m in self.user.history(self.bot_user, limit=100) if not m.out]

    def last(self) -> Message:
        msgs = self.incoming()
        assert msgs, "the bot has sent nothing"
        return msgs[0]

    def top_id(self) -> int:
        msgs = self.user.history(self.bot_user, limit=1)
        return msgs[0].id if msgs else 0

    async def wait_for(self, pred: Callable[[Message], bool], after: int | None = None) -> Message:
        """The first bot message newer than ``after`` (default: the last waited-for) matching."""
        after = self.seen if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            changed = self.sandbox.changed(self.user.id)
            for m in reversed(self.incoming()):
                if m.id > after and pred(m):
                    self.seen = m.id
                    return m
            remaining = deadline - loop.time()
            if remaining <= 0:
                texts = [m.text for m in self.incoming()[:5]]
                raise AssertionError(f"no matching bot message; newest: {texts}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def send(self, text: str, expect: str = "") -> Message:
        """Send ``text``; returns the first reply containing ``expect``."""
        before = self.top_id()
        await self.user.send_message(self.bot_user, text)
        return await self.wait_for(lambda m: expect in m.text, before)

    async def share_contact(self, expect: str = "") -> Message:
        before = self.top_id()
        await self.user.share_contact(self.bot_user)
        return await self.wait_for(lambda m: expect in m.text, before)

    async def share_users(self, request_id: int, users: list[Any], expect: str = "") -> Message:
        before = self.top_id()
        await self.user.share_users(self.bot_user, request_id, users)
        return await self.wait_for(lambda m: expect in m.text, before)

    @staticmethod
    def button(msg: Message, text: str) -> bytes:
        for row in msg.buttons or ():
            for b in row:
                if text in b.text and b.data is not None:
                    return b.data
        shown = [b.text for row in msg.buttons or () for b in row]
        raise AssertionError(f"no button {text!r} on {msg.text!r}: {shown}")

    @staticmethod
    def buttons(msg: Message) -> list[str]:
        return [b.text for row in msg.buttons or () for b in row]

    async def press(self, msg: Message, text: str) -> CallbackQuery:
        """Press the button whose text contains ``text`` (the handler has run on return)."""
        query = await self.user.press_button(msg.id, self.button(msg, text), timeout=TIMEOUT)
        assert query.answered, "the bot did not answer the button press"
        return query

    def current(self, msg: Message) -> Message:
        """``msg`` as it is now (after edits)."""
        now = self.sandbox.world.message(self.user.id, msg.id)
        assert now is not None
        return now


@dataclass
class Harness:
    sandbox: Sandbox
    store: ConfigStore
    bot: Bot
    dp: Dispatcher
    bot_user: User
    alice: ScriptedUser
    bob: ScriptedUser
    line_states: DictLineStates
    clock: FakeClock
    api_port: int
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def chat(self, user: ScriptedUser) -> Chat:
        return Chat(self.sandbox, user, self.bot_user)

    async def session(self, admin: ScriptedUser | None, phone: str = "15550100") -> SessionRecord:
        return await self.store.create_session(
            SessionRecord(
                admin_id=admin.id if admin else None,
                phone=phone,
                tg_user_id=None,
                username="",
                state=SessionState.ACTIVE,
            )
        )


async def make_harness(
    sandbox: Sandbox,
    store: ConfigStore,
    sessions: SessionService | None = None,
    polling: bool = True,
) -> Harness:
    bot_user = sandbox.create_bot("gw_admin_bot", "Gateway")
    assert bot_user.bot_token is not None
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    alice = sandbox.create_user("15550001", "Alice", username="alice_op")
    bob = sandbox.create_user("15550002", "Bob", username="bob_other")
    line_states = DictLineStates()
    clock = FakeClock()
    dp = create_dispatcher(
        store,
        admins=[alice.id],
        sessions=sessions,
        line_states=line_states,
        sip_address="gw.example.net:5060",
        clock=clock,
    )
    api = TelegramAPIServer.from_base(f"http://127.0.0.1:{api_port}")
    bot = Bot(bot_user.bot_token, session=AiohttpSession(api=api))
    h = Harness(sandbox, store, bot, dp, bot_user, alice, bob, line_states, clock, api_port)
    if polling:
        h.tasks.append(
            asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
        )
    return h


async def close_harness(h: Harness) -> None:
    for task in h.tasks:
        # Cancelling ends the pending long poll at once (stop_polling would wait it out).
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)
    await h.bot.session.close()


@pytest_asyncio.fixture
async def harness(sandbox: Sandbox, store: ConfigStore) -> AsyncIterator[Harness]:
    h = await make_harness(sandbox, store)
    yield h
    await close_harness(h)
