"""Fixtures: a Telegram sandbox on 127.0.0.1, the configuration store, session storages
(embedded SQLite, and a throwaway PostgreSQL cluster when its binaries are installed) and a
SessionManager pointed at the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from tgsip.config.sessions import StorageKind
from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, trust_key
from tgsip.storage.secretbox import SecretBox
from tgsip.storage.store import ConfigStore
from tgsip.telegram.login import Connected, LoginFlow, digits_only
from tgsip.telegram.manager import SessionEvent, SessionManager, TelegramOptions
from tgsip.telegram.storage import SessionStorages

TIMEOUT = 20.0

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@pytest.fixture(scope="session")
def rsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-key")


async def start_sandbox(data: Path, rsa_dir: Path, port: int = 0) -> Sandbox:
    key = rsa_dir / "rsa_key.pem"
    data.mkdir(parents=True, exist_ok=True)
    if key.exists() and not (data / "rsa_key.pem").exists():
        (data / "rsa_key.pem").write_bytes(key.read_bytes())
    sb = Sandbox(data)
    if not key.exists():
        key.write_bytes((data / "rsa_key.pem").read_bytes())
    trust_key(sb.public_key_pem)
    await sb.start("127.0.0.1", port)
    return sb


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path, rsa_dir: Path) -> AsyncIterator[Sandbox]:
    sb = await start_sandbox(tmp_path / "sandbox", rsa_dir)
    yield sb
    await sb.stop()
    sb.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    dsn: str


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as the ``postgres`` OS user."""
    if not PG_BIN_DIRS or not (PG_BIN_DIRS[0] / "initdb").exists():
        pytest.skip("PostgreSQL server binaries absent (Debian package postgresql)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a PostgreSQL cluster needs root (runuser -u postgres)")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' OS user (Debian package postgresql creates it)")
    bindir = PG_BIN_DIRS[0]
    root = Path(tempfile.mkdtemp(prefix="tgsip-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    shutil.chown(root, "postgres", "postgres")
    port = _free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    as_postgres(
        str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"
    )
    as_postgres(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-t",
        "30",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {root} -F",
        "start",
    )
    try:
        yield PgCluster(dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Gateway:
    """One gateway's Telegram side: store, storages, manager, and what its listeners heard."""

    data_dir: Path
    box: SecretBox
    store: ConfigStore
    storages: SessionStorages
    manager: SessionManager
    events: list[SessionEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: SessionEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait (bounded) until ``predicate()`` holds, re-checking on every event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"condition not met in {timeout} s; events: {self.events}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.1))

    def kinds(self, session_id: int) -> list[str]:
        return [e.kind for e in self.events if e.session_id == session_id]


def options_for(sandbox: Sandbox, **overrides: float) -> TelegramOptions:
    host, port = sandbox.advertised_address
    return TelegramOptions(
        api_id=DEFAULT_API_ID,
        api_hash=DEFAULT_API_HASH,
        server=(sandbox.dc_id, host, port),
        request_timeout=5.0,
        health_interval=overrides.get("health_interval", 0.3),
        reconnect_initial=0.05,
        reconnect_max=0.5,
        login_timeout=overrides.get("login_timeout", 600.0),
    )


@pytest_asyncio.fixture
async def make_gateway(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """``await make_gateway(data_dir=None, postgres_dsn=None, key=None, **options)``."""
    made: list[Gateway] = []

    async def factory(
        data_dir: Path | None = None,
        postgres_dsn: str | None = None,
        key: bytes | None = None,
        start: bool = True,
        **overrides: float,
    ) -> Gateway:
        data = data_dir or tmp_path / "gateway"
        data.mkdir(parents=True, exist_ok=True)
        box = SecretBox(key) if key is not None else SecretBox.from_environment(data)
        store = ConfigStore.open_sqlite(data / "config.sqlite3", box)
        storages = SessionStorages(data, box, postgres_dsn)
        manager = SessionManager(store, storages, options_for(sandbox, **overrides))
        gw = Gateway(data, box, store, storages, manager)
        manager.add_listener(gw.on_event)
        if start:
            await manager.start()
        made.append(gw)
        return gw

    yield factory
    for gw in made:
        await stop_gateway(gw)


async def stop_gateway(gw: Gateway) -> None:
    await gw.manager.stop()
    await gw.storages.close()
    gw.store.close()


async def connect_session(
    gw: Gateway,
    sandbox: Sandbox,
    phone: str,
    admin_id: int = 42,
    storage: StorageKind = StorageKind.EMBEDDED,
) -> Connected:
    """Log in ``phone`` through a LoginFlow (code read from the sandbox)."""
    flow: LoginFlow = gw.manager.begin_login(admin_id, storage)
    step = await asyncio.wait_for(flow.submit_phone(phone), TIMEOUT)
    assert step.__class__.__name__ == "CodeSent", step
    code = sandbox.last_login_code(digits_only(phone))
    assert code is not None
    done = await asyncio.wait_for(flow.submit_code(" ".join(code)), TIMEOUT)
    assert isinstance(done, Connected), done
    await gw.wait_for(lambda: gw.manager.is_online(done.session.id))
    return done
