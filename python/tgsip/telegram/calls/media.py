"""The Telegram call media leg: ntgcalls 3.0.5 driven from asyncio (``telegram_calls.md`` §6).

This is the only module of tgsip that imports ``ntgcalls``. One :class:`TelegramMedia` owns
one ``NTgCalls`` instance and drives every call of the process; each call is a
:class:`MediaCall` with its own key as the ntgcalls call id (ntgcalls' P2P API calls it the
user id, but only uses it to tell calls apart, so two session accounts of the process can each
be in a call with the same Telegram user).

Contracts:

* ntgcalls methods return asyncio futures (the work runs on worker threads) and are called on
  the event-loop thread only, in order: every operation of every instance in the loop goes
  through one lane. A control operation (create, connect, signalling in, stop, ...) runs alone
  (two running at once crashed the process in our tests); audio frames
  (``send_external_frame``) are pipelined: started in order without waiting for the one before,
  never while a control operation runs, and a control operation waits for the frames in flight.
  (Awaiting each frame's round trip through the loop before the next capped the process at
  about 700 frames a second, measured with 20 call legs on 2 cores: too few for 10 calls.) A
  call is stopped only after its frames in flight were sent, and :meth:`TelegramMedia.close`
  waits for every outstanding future while the loop still runs.
* ntgcalls callbacks run on native threads. Signalling and state changes are handed to the
  loop with ``call_soon_threadsafe``; received audio frames go straight to the call's
  :class:`~tgsip.telegram.calls.ports.PcmPort` (``write_frame`` is thread-safe).
* Per call, every command (create, connect with the DH key, signalling in, stop) runs in
  order through one queue and one pump task; signalling out (to ``phone.sendSignalingData``)
  goes through a second queue and pump task, awaiting the sender for each blob in order.
* Audio towards Telegram: one process-wide tick every 10 ms on absolute deadlines
  (``loop.call_at``) pulls one frame per connected call from its port and calls
  ``send_external_frame``. A late loop skips ticks instead of sending bursts, and a call with
  :data:`MAX_FRAMES_IN_FLIGHT` frames still unsent is skipped for that tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import ntgcalls  # type: ignore[import-not-found]

from tgsip.telegram.calls.call import MediaState, RelayServer
from tgsip.telegram.calls.ports import SAMPLE_RATES, PcmPort, frame_bytes

log = logging.getLogger(__name__)

#: The PCM tick period, seconds.
TICK = 0.010
#: A tick later than this skips to the next slot instead of catching up.
MAX_LATE = 0.030
#: Frames of one call handed to ntgcalls and not sent yet; beyond this the tick skips the call.
MAX_FRAMES_IN_FLIGHT = 2

#: ntgcalls call keys, unique in the process (log lines and ntgcalls' own state never mix two
#: calls, whichever instance they belong to).
_KEYS = itertools.count(1)

_STATES: dict[Any, MediaState] = {
    ntgcalls.ConnectionState.CONNECTING: "CONNECTING",
    ntgcalls.ConnectionState.CONNECTED: "CONNECTED",
    ntgcalls.ConnectionState.FAILED: "FAILED",
    ntgcalls.ConnectionState.TIMEOUT: "TIMEOUT",
    ntgcalls.ConnectionState.CLOSED: "CLOSED",
}


class MediaError(Exception):
    """An ntgcalls operation failed (its message says which and why)."""


@dataclass(frozen=True)
class ProtocolInfo:
    """What ntgcalls supports, for ``phoneCallProtocol``."""

    min_layer: int
    max_layer: int
    udp_p2p: bool
    udp_reflector: bool
    library_versions: tuple[str, ...]


def protocol_info() -> ProtocolInfo:
    """``NTgCalls.get_protocol()`` as a plain value."""
    p = ntgcalls.NTgCalls.get_protocol()
    return ProtocolInfo(
        int(p.min_layer),
        int(p.max_layer),
        bool(p.udp_p2p),
        bool(p.udp_reflector),
        tuple(str(v) for v in p.library_versions),
    )


def _rtc_server(s: RelayServer) -> Any:
    return ntgcalls.RTCServer(
        s.id, s.ip, s.ipv6, s.port, s.username, s.password, s.turn, s.stun, s.tcp, s.peer_tag
    )


def _audio(rate: int) -> Any:
    desc = ntgcalls.AudioDescription(ntgcalls.MediaSource.EXTERNAL, rate, 1, "", False)
    return ntgcalls.MediaDescription(desc, None, None, None)


NativeOp = Callable[[], Any]


class _Lane:
    """Runs ntgcalls operations in submission order: control operations one at a time, frames
    pipelined between them.

    ntgcalls runs each operation on a worker thread; two control operations running at once
    (even on different calls or instances) crashed the process in our tests, so every
    operation of every instance in the loop goes through one lane. A ``shared`` operation (an
    audio frame) is started as soon as it is its turn, without waiting for the previous shared
    ones to finish; an exclusive one first waits for every shared one in flight and nothing
    starts until it finished.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.users = 0
        self._queue: asyncio.Queue[tuple[NativeOp, asyncio.Future[Any], bool]] = asyncio.Queue()
        self._shared: set[asyncio.Future[Any]] = set()
        self._task = self.loop.create_task(self._pump(), name="ntgcalls-lane")

    def submit(self, fn: NativeOp, *, shared: bool = False) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._queue.put_nowait((fn, fut, shared))
        return fut

    def _start_shared(self, fn: NativeOp, fut: asyncio.Future[Any]) -> None:
        try:
            native = asyncio.ensure_future(fn())
        except Exception as exc:
            fut.set_exception(exc)
            return
        self._shared.add(native)
        native.add_done_callback(partial(self._shared_done, fut))

    def _shared_done(self, fut: asyncio.Future[Any], native: asyncio.Future[Any]) -> None:
        self._shared.discard(native)
        if fut.done():
            if not native.cancelled():
                native.exception()  # retrieved: nobody waits for it any more
        elif native.cancelled():
            fut.cancel()
        elif (exc := native.exception()) is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(native.result())

    async def _pump(self) -> None:
        while True:
            fn, fut, shared = await self._queue.get()
            if fut.done():
                continue
            if shared:
                self._start_shared(fn, fut)
                continue
            if self._shared:
                await asyncio.wait(set(self._shared))
            try:
                result = await fn()
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)

    def stop(self) -> None:
        self._task.cancel()


_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()


StateCallback = Callable[[MediaState], None]
SignalSender = Callable[[bytes], Awaitable[None]]


class MediaCall:
    """One call's media. Created by :meth:`TelegramMedia.open`; every method only queues."""

    def __init__(
        self,
        media: TelegramMedia,
        key: int,
        peer_id: int,
        port: PcmPort,
        on_state: StateCallback,
        send_signaling: SignalSender,
    ) -> None:
        self.media = media
        self.key = key
        self.peer_id = peer_id
        self.port = port
        self.state: MediaState | None = None
        self.connected_at: float | None = None
        self.opened_at = time.monotonic()
        self.versions: tuple[str, ...] = ()
        self.error: str | None = None
        self.signals_in = 0
        self.signals_out = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        self._in_flight: set[asyncio.Future[Any]] = set()
        self.frames_received = 0
        self._frame_bytes = frame_bytes(port.sample_rate)
        self._on_state = on_state
        self._send_signaling = send_signaling
        self._commands: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._outbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._live = False  # the native call exists
        self._sending = False  # the tick sends this call's frames
        self._closed = False
        self.done = asyncio.Event()
        self._pumps = [
            asyncio.create_task(self._command_pump(), name=f"tg-media-cmd-{key}"),
            asyncio.create_task(self._outbound_pump(), name=f"tg-media-out-{key}"),
        ]

    # -- commands (queued, run in order) ---------------------------------------------------

    def connect(
        self,
        key: bytes,
        *,
        outgoing: bool,
        servers: tuple[RelayServer, ...],
        versions: tuple[str, ...],
        p2p_allowed: bool,
        custom_parameters: str | None,
    ) -> None:
        """Hands over the 256-byte call key (``skip_exchange``) and connects (``connect_p2p``)
        with the call's servers and the library versions of the final ``phoneCall``."""
        self._queue("connect", (key, outgoing, servers, versions, p2p_allowed, custom_parameters))

    def signal(self, data: bytes) -> None:
        """Feeds one blob of the peer's signalling (``updatePhoneCallSignalingData``)."""
        self._queue("signal", bytes(data))

    def close(self) -> None:
        """Stops the call; :attr:`done` is set when the native call is gone. Idempotent."""
        if not self._closed:
            self._closed = True
            self._sending = False
            self._commands.put_nowait(("stop", None))
            self._commands.put_nowait(None)

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Closes and waits (bounded) until the call is gone."""
        self.close()
        await asyncio.wait_for(self.done.wait(), timeout)

    def _queue(self, op: str, arg: Any) -> None:
        if not self._closed:
            self._commands.put_nowait((op, arg))

    # -- pumps -----------------------------------------------------------------------------

    async def _command_pump(self) -> None:
        nt = self.media.native
        run = self.media.run
        try:
            try:
                await run(partial(nt.create_p2p_call, self.key))
                self._live = True
                audio = _audio(self.port.sample_rate)
                for mode in (ntgcalls.StreamMode.CAPTURE, ntgcalls.StreamMode.PLAYBACK):
                    await run(partial(nt.set_stream_sources, self.key, mode, audio))
            except Exception as exc:
                self._fail(f"create: {exc!r}")
            while (item := await self._commands.get()) is not None:
                op, arg = item
                if op == "stop":
                    break
                if not self._live:
                    continue
                try:
                    if op == "signal":
                        self.signals_in += 1
                        await run(partial(nt.send_signaling_data, self.key, arg))
                    elif op == "connect":
                        await self._connect(*arg)
                except Exception as exc:
                    # A call that ntgcalls already removed (TIMEOUT/FAILED) refuses everything.
                    self._fail(f"{op}: {exc!r}")
        finally:
            await self._stop_native()

    async def _connect(
        self,
        key: bytes,
        outgoing: bool,
        servers: tuple[RelayServer, ...],
        versions: tuple[str, ...],
        p2p_allowed: bool,
        custom_parameters: str | None,
    ) -> None:
        nt = self.media.native
        self.versions = versions
        run = self.media.run
        await run(partial(nt.skip_exchange, self.key, key, outgoing))
        log.info(
            "telegram media %s: connecting, versions %s, %d servers, p2p %s",
            self.peer_id,
            ",".join(versions),
            len(servers),
            p2p_allowed,
        )
        rtc = [_rtc_server(s) for s in servers]
        await run(
            partial(nt.connect_p2p, self.key, rtc, list(versions), p2p_allowed, custom_parameters)
        )

    async def _stop_native(self) -> None:
        self._sending = False
        self._closed = True
        if self._in_flight:
            # ntgcalls runs each call in a worker thread: a frame still being sent while the
            # call is stopped can bring the process down. Let the frames finish first.
            await asyncio.wait(list(self._in_flight), timeout=2.0)
        if self._live:
            self._live = False
            with contextlib.suppress(Exception):
                await self.media.run(partial(self.media.native.stop, self.key))
        self._outbound.put_nowait(None)
        self.media._forget(self)
        self.done.set()

    async def _outbound_pump(self) -> None:
        while (data := await self._outbound.get()) is not None:
            try:
                await self._send_signaling(data)
                self.signals_out += 1
            except Exception as exc:
                log.warning("telegram media %s: sending signalling failed: %r", self.peer_id, exc)

    # -- events (loop thread) --------------------------------------------------------------

    def _fail(self, why: str) -> None:
        self.error = why
        log.warning("telegram media %s: %s", self.peer_id, why)
        if not self._closed and self.state not in ("FAILED", "TIMEOUT", "CLOSED"):
            self._set_state("FAILED")

    def _set_state(self, state: MediaState) -> None:
        self.state = state
        if state == "CONNECTED":
            self.connected_at = time.monotonic()
            self._sending = not self._closed
            log.info(
                "telegram media %s: connected in %.3f s",
                self.peer_id,
                self.connected_at - self.opened_at,
            )
        elif state in ("FAILED", "TIMEOUT", "CLOSED"):
            self._sending = False
            self._live = False  # ntgcalls removed the call itself
        with contextlib.suppress(Exception):
            self._on_state(state)

    def _outgoing_signal(self, data: bytes) -> None:
        if not self._closed:
            self._outbound.put_nowait(data)

    def _frame(self) -> None:
        if len(self._in_flight) >= MAX_FRAMES_IN_FLIGHT:
            self.frames_skipped += 1  # ntgcalls is behind: drop rather than queue a burst
            return
        data = self.port.read_frame()
        if len(data) != self._frame_bytes:
            # ntgcalls reads a whole frame whatever length it is given: never hand it less.
            data = (data + bytes(self._frame_bytes))[: self._frame_bytes]
        self.frames_sent += 1
        nt = self.media.native
        stamp = ntgcalls.FrameData(int(time.time() * 1000), ntgcalls.VIDEO_ROTATION_0, 0, 0)
        fut = self.media.submit(
            partial(
                nt.send_external_frame, self.key, ntgcalls.StreamDevice.MICROPHONE, data, stamp
            ),
            shared=True,
        )
        self._in_flight.add(fut)
        fut.add_done_callback(self._in_flight.discard)
        self.media._track(fut)


class TelegramMedia:
    """The process's ntgcalls instance and its 10 ms PCM tick. Use ``async with`` or call
    :meth:`close`. Construct it inside the running event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.native: Any = ntgcalls.NTgCalls()
        self._calls: dict[int, MediaCall] = {}  # by ntgcalls call key
        self._tick_handle: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self.late_ticks = 0
        self.ticks = 0
        self._closed = False
        self._pending: set[asyncio.Future[Any]] = set()
        lane = _LANES.get(self.loop)
        if lane is None:
            lane = _LANES[self.loop] = _Lane()
        lane.users += 1
        self._lane: _Lane | None = lane
        self.native.on_signaling_data(self._native_signaling)
        self.native.on_connection_change(self._native_state)
        self.native.on_frames(self._native_frames)

    def submit(self, fn: NativeOp, *, shared: bool = False) -> asyncio.Future[Any]:
        """Queues one ntgcalls operation (``fn`` returns ntgcalls' future) on the lane;
        ``shared`` for audio frames, which may overlap each other (see :class:`_Lane`)."""
        if self._lane is None:
            raise MediaError("the media leg is closed")
        return self._lane.submit(fn, shared=shared)

    async def run(self, fn: NativeOp) -> Any:
        """Runs one ntgcalls operation on the lane and returns its result."""
        return await self.submit(fn)

    @staticmethod
    def protocol() -> ProtocolInfo:
        """What this ntgcalls supports (:func:`protocol_info`)."""
        return protocol_info()

    @property
    def calls(self) -> dict[int, MediaCall]:
        """Open calls by their ntgcalls key (not the peer: several session accounts of one
        process may each be in a call with the same Telegram user)."""
        return dict(self._calls)

    def open(
        self,
        peer_id: int,
        port: PcmPort,
        *,
        on_state: StateCallback,
        send_signaling: SignalSender,
    ) -> MediaCall:
        """Creates the media call towards ``peer_id`` with ``port`` as its audio.

        ``on_state`` gets every connection state (on the loop thread); ``send_signaling`` is
        awaited for each blob ntgcalls produces, in order (it should send
        ``phone.sendSignalingData``). Raises :class:`MediaError` if the port's rate is not
        supported or the media leg is closed.
        """
        if self._closed:
            raise MediaError("the media leg is closed")
        if port.sample_rate not in SAMPLE_RATES:
            raise MediaError(f"unsupported PCM rate {port.sample_rate}")
        key = next(_KEYS)
        call = MediaCall(self, key, peer_id, port, on_state, send_signaling)
        self._calls[key] = call
        self._start_tick()
        return call

    async def cpu_usage(self) -> float:
        """ntgcalls' own CPU usage figure (percent of one core, as ntgcalls measures it). Like
        every ntgcalls operation it returns a future and runs on the lane."""
        return float(cast(float, await self.run(self.native.cpu_usage)))

    async def close(self, timeout: float = 5.0) -> None:
        """Stops every call (bounded wait) and the tick."""
        self._closed = True
        calls = list(self._calls.values())
        for c in calls:
            c.close()
        if calls:
            await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in calls)), timeout)
        self._stop_tick()
        # ntgcalls resolves its futures from native threads through the loop: let the last
        # ones finish while the loop still runs.
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
        if self._lane is not None:
            self._lane.users -= 1
            if self._lane.users == 0:
                self._lane.stop()
                _LANES.pop(self.loop, None)
            self._lane = None

    async def __aenter__(self) -> TelegramMedia:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._pending.add(fut)
        fut.add_done_callback(self._settled)

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled():
            fut.exception()  # a frame for a call ntgcalls already removed: nothing to do

    def _forget(self, call: MediaCall) -> None:
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        if not self._calls:
            self._stop_tick()

    # -- the 10 ms tick --------------------------------------------------------------------

    def _start_tick(self) -> None:
        if self._tick_handle is None:
            self._next_tick = self.loop.time() + TICK
            self._tick_handle = self.loop.call_at(self._next_tick, self._tick)

    def _stop_tick(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    def _tick(self) -> None:
        self.ticks += 1
        for call in list(self._calls.values()):
            if call._sending:
                try:
                    call._frame()
                except Exception as exc:
                    call._sending = False
                    call._fail(f"send frame: {exc!r}")
        now = self.loop.time()
        self._next_tick += TICK
        if now - self._next_tick > MAX_LATE:
            self.late_ticks += 1
            skipped = int((now - self._next_tick) / TICK) + 1
            self._next_tick += skipped * TICK
        self._tick_handle = self.loop.call_at(self._next_tick, self._tick)

    # -- native callbacks (any thread) -----------------------------------------------------

    def _threadsafe(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
            self.loop.call_soon_threadsafe(fn, *args)

    def _native_signaling(self, chat_id: int, data: bytes) -> None:
        self._threadsafe(self._on_signaling, int(chat_id), bytes(data))

    def _native_state(self, chat_id: int, info: Any) -> None:
        state = _STATES.get(info.state)
        if state is not None:
            self._threadsafe(self._on_state, int(chat_id), state)

    def _native_frames(self, chat_id: int, mode: Any, device: Any, frames: Any) -> None:
        call = self._calls.get(int(chat_id))
        if call is None or mode != ntgcalls.StreamMode.PLAYBACK:
            return
        if device not in (ntgcalls.StreamDevice.MICROPHONE, ntgcalls.StreamDevice.SPEAKER):
            return
        for frame in frames:
            data = bytes(frame.data)
            if len(data) == call._frame_bytes:
                call.frames_received += 1
                call.port.write_frame(data)
                break

    def _on_signaling(self, chat_id: int, data: bytes) -> None:
        call = self._calls.get(chat_id)
        if call is not None:
            call._outgoing_signal(data)

    def _on_state(self, chat_id: int, state: MediaState) -> None:
        call = self._calls.get(chat_id)
        if call is not None and not call._closed:
            call._set_state(state)


__all__ = [
    "MAX_FRAMES_IN_FLIGHT",
    "MAX_LATE",
    "TICK",
    "MediaCall",
    "MediaError",
    "ProtocolInfo",
    "TelegramMedia",
    "protocol_info",
]
