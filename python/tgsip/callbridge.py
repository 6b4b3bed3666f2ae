"""The call bridge: Telegram ⇄ SIP calls end to end (``product.md`` §9, §11, §14).

:class:`CallRouter` is the I/O shell that carries out the sans-I/O decisions of
:mod:`tgsip.calls.router`. It sits beside the composition root (it joins the SIP and the
Telegram packages, which the call layer below them may not import).

* Telegram → SIP: each online session has a :class:`~tgsip.telegram.calls.service.CallService`
  (:meth:`CallRouter.attach`). An incoming call is kept ringing (``receivedCall``) while the
  session's lines are hunted (:class:`~tgsip.calls.router.Hunt`); the first 2xx accepts the
  Telegram call with a :class:`SipLegPort` over that leg's media-core line; every other fork
  is cancelled. Either side hanging up ends the other. All forks failed: the Telegram call is
  discarded (busy when every final was 486/600) and the line's administrator is told.
* SIP → Telegram: :meth:`CallRouter.on_invite` (the SIP service's hook) reads the called
  identifier, places the Telegram call with the SIP leg's line as its audio, sends 180 when the
  callee's device rings and 200 when the media connects. Refusals and early ends map to SIP
  statuses by :func:`~tgsip.calls.router.refusal_status` and
  :func:`~tgsip.calls.router.ended_status`; without ringing within ``reach_timeout`` (15 s,
  decision 14) the PBX gets 480 and the Telegram call is discarded as missed.
* DTMF received on a SIP leg goes to :meth:`CallRouter.add_dtmf_listener` listeners (the
  digits are not logged; the in-chat keypad is not part of this module).
* Gateway → PBX lines answer a 401/407 to an INVITE once with the line's credentials.
* Messages processing (§11): with it on, a user's text is the candidate number of their next
  call (10 min); with Callback on and a line suiting the text, the gateway calls the user
  (ringback while it hunts the PBX with the text through the dial rules; a failure is posted
  in the chat, 380 "Callback is restricted" when privacy forbids the call); otherwise the
  Inline bot (first result posted) or the Autoreply template answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tgsip.calls.callerid import CallerInfo
from tgsip.calls.notices import AdminNotices
from tgsip.calls.router import (
    Cancel,
    CandidateNumbers,
    Failed,
    FloodGuard,
    Fork,
    Hunt,
    HuntAction,
    Invite,
    Routed,
    SipFinal,
    called_identifier,
    ended_status,
    plan_forks,
    refusal_status,
    telegram_target,
)
from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.auth import AuthError
from tgsip.sip.call import Answered, CallEvent, CallState, Dtmf, Ended, SipCall
from tgsip.sip.headers import quote
from tgsip.sip.message import Request, SipParseError
from tgsip.sip.offer import MediaPolicy
from tgsip.sip.service import CallTarget, SipService
from tgsip.sip.transaction import Peer
from tgsip.storage import ConfigStore
from tgsip.telegram.calls.call import Ended as TgEnded
from tgsip.telegram.calls.call import EndReason
from tgsip.telegram.calls.ports import ToneSource, frame_bytes
from tgsip.telegram.calls.service import (
    CallFloodWait,
    CallHandle,
    CallRefused,
    CallService,
    CallServiceError,
)
from tgsip.telegram.messages import IncomingMessage, SessionMessenger

__all__ = ["CallRouter", "SipLegPort"]

log = logging.getLogger(__name__)

REACH_TIMEOUT = 15.0
"""Seconds to reach the callee of a SIP → Telegram call (decision 14)."""
PCM_RATE = 8000
"""The rate of the PCM the SIP legs' media lines exchange with Telegram."""
RPC_TIMEOUT = 10.0
"""Seconds Telegram has to accept a call request before the PBX gets 408 (§14.1)."""


DtmfListener = Callable[[int, int, Dtmf], None]
"""``cb(session_id, user_id, digit event)``."""


class SipLegPort:
    """A Telegram call's audio over a SIP leg's media-core line (a
    :class:`~tgsip.telegram.calls.ports.PcmPort`). It follows the leg: when the answer made
    the leg reopen its line with another codec, the new line is used. Without a leg yet (a
    Callback call hunting the PBX) the user hears a ringback tone: 425 Hz, 1 s on, 4 s off."""

    def __init__(self, call: SipCall | None, sample_rate: int = PCM_RATE) -> None:
        self.call = call
        self._rate = sample_rate
        self._bytes = frame_bytes(sample_rate)
        self._ringback = ToneSource(425, sample_rate, -15.0)
        self._tick = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    def read_frame(self) -> bytes:
        call = self.call
        if call is None:
            self._tick = (self._tick + 1) % 500
            tone = self._ringback.next_frame()
            return tone if self._tick < 100 else bytes(self._bytes)
        line = call.line
        data = line.pull_pcm() if line is not None and not line.closed else b""
        if len(data) != self._bytes:
            data = (data + bytes(self._bytes))[: self._bytes]
        return data

    def write_frame(self, data: bytes) -> None:
        call = self.call
        line = call.line if call is not None else None
        if line is not None and not line.closed:
            with contextlib.suppress(Exception):  # closed between the check and the push
                line.push_pcm(data)


@dataclass
class _Outgoing:
    """A Telegram → SIP call being hunted."""

    session_id: int
    handle: CallHandle
    hunt: Hunt
    lines: dict[int, SipLine]
    legs: dict[int, SipCall] = field(default_factory=dict)
    targets: dict[int, CallTarget] = field(default_factory=dict)
    challenged: set[int] = field(default_factory=set)
    callback: SipLegPort | None = None
    """Set for a Callback call: the Telegram call is up already; the leg joins this port."""
    timer: asyncio.TimerHandle | None = None


class CallRouter:
    """Routes calls between the SIP service and the sessions' call services.

    ``messenger(sid)`` sends messages as a session (Messages processing), ``online(sid)``
    says whether a session is connected (503 to INVITEs otherwise), ``notices`` are the
    administrator notifications; all optional.
    """

    def __init__(
        self,
        sip: SipService,
        store: ConfigStore,
        *,
        messenger: Callable[[int], SessionMessenger] | None = None,
        notices: AdminNotices | None = None,
        online: Callable[[int], bool] | None = None,
        group_timeout: float = 30.0,
        tg_ring_timeout: float = 90.0,
        reach_timeout: float = REACH_TIMEOUT,
    ) -> None:
        self.sip = sip
        self.store = store
        self.messenger = messenger
        self.notices = notices
        self.online = online
        self.group_timeout = group_timeout
        self.tg_ring_timeout = tg_ring_timeout
        self.reach_timeout = reach_timeout
        self.services: dict[int, CallService] = {}
        self.candidates = CandidateNumbers()
        self.flood = FloodGuard()
        self.stats: dict[str, int] = {"tg_to_sip": 0, "sip_to_tg": 0, "bridged": 0, "failed": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failures: dict[int, int] = {}  # calls in a row that failed, by line
        self._active: dict[int, int] = {}  # connected calls by line
        self._dtmf_listeners: list[DtmfListener] = []
        self._loop = asyncio.get_running_loop()
        sip.on_invite = self.on_invite
        sip.ua.on_call = self._hold_call  # calls wait for this router's decision
        sip.ua.policy_for = self._policy_for

    # -- wiring ------------------------------------------------------------------------

    def attach(self, session_id: int, service: CallService) -> None:
        """Route the calls of session ``session_id`` (its call service is started)."""
        service.on_incoming = lambda handle: self._on_tg_incoming(session_id, handle)
        self.services[session_id] = service

    def detach(self, session_id: int) -> CallService | None:
        """Stop routing a session's calls; returns its call service (to stop it)."""
        return self.services.pop(session_id, None)

    async def stop(self) -> None:
        """Cancel the running call tasks (the call services are stopped by their owner)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _policy_for(self, request: Request) -> MediaPolicy | None:
        line_id = self.sip.line_of(request)
        line = self.sip.line(line_id) if line_id is not None else None
        if line is None:
            return None
        return MediaPolicy.from_line(line, pcm_rate=PCM_RATE)

    @staticmethod
    def _hold_call(call: SipCall) -> None:
        """The UA's ``on_call``: the INVITE waits for :meth:`on_invite`'s task."""

    def active_calls(self, line_id: int) -> int:
        """Calls connected through ``line_id`` now (for the bot's line card)."""
        return self._active.get(line_id, 0)

    @contextlib.contextmanager
    def _counted(self, line_id: int) -> Iterator[None]:
        self._active[line_id] = self._active.get(line_id, 0) + 1
        try:
            yield
        finally:
            left = self._active.get(line_id, 1) - 1
            if left > 0:
                self._active[line_id] = left
            else:
                self._active.pop(line_id, None)

    # -- SIP → Telegram -------------------------------------------------------------------

    def on_invite(self, line_id: int, request: Request, source: Peer) -> None:
        """The SIP service's hook for a new INVITE accepted on ``line_id``."""
        call = self.sip.ua.call_for(request)
        if call is None:
            return
        self._spawn(self._sip_to_tg(line_id, call))

    async def _sip_to_tg(self, line_id: int, call: SipCall) -> None:
        self.stats["sip_to_tg"] += 1
        line = self.sip.line(line_id)
        if line is None:
            self._reject(call, SipFinal(404, "Not Found"))
            return
        try:
            ruri = call.invite.request_uri.user or ""
            to_user = call.invite.to.uri.user or ""
        except (SipParseError, ValueError):
            self._reject(call, SipFinal(400, "Bad Request"))
            return
        called = called_identifier(line, unquote(ruri), unquote(to_user))
        if called is None:
            self._reject(call, SipFinal(404, "Not Found"))
            return
        service = self.services.get(line.session_id)
        if service is None or (self.online is not None and not self.online(line.session_id)):
            self._reject(call, refusal_status("OFFLINE"))
            return
        wait = self.flood.wait_left(line.session_id, self._loop.time())
        if wait:
            self._reject(call, refusal_status("FLOOD_WAIT", wait))
            return
        target = telegram_target(called)
        log.info("SIP call on line %d to %s %s", line_id, called.kind.value, "***")
        try:
            handle = await asyncio.wait_for(service.call(target, SipLegPort(call)), RPC_TIMEOUT)
        except CallFloodWait as exc:
            self.flood.hit(line.session_id, exc.seconds, self._loop.time())
            self._reject(call, refusal_status("FLOOD_WAIT", exc.seconds))
            return
        except CallRefused as exc:
            self._reject(call, refusal_status(exc.name))
            return
        except TimeoutError:
            self._reject(call, refusal_status("TIMEOUT"))
            return
        except CallServiceError as exc:
            log.warning("line %d: Telegram call not placed: %s", line_id, exc)
            self._reject(call, refusal_status("ERROR"))
            return
        await self._run_sip_to_tg(line.session_id, line_id, call, handle)

    async def _run_sip_to_tg(
        self, session_id: int, line_id: int, call: SipCall, handle: CallHandle
    ) -> None:
        ringing = self._loop.create_task(handle.ringing.wait())
        connected = self._loop.create_task(handle.connected.wait())
        sip_end = self._loop.create_task(call.ended.wait())
        tg_end = asyncio.ensure_future(asyncio.shield(handle.ended))
        tasks = (ringing, connected, sip_end, tg_end)
        try:
            done, _ = await asyncio.wait(
                (ringing, connected, sip_end, tg_end),
                timeout=self.reach_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:  # decision 14: not reached in time
                handle.hangup()
                self._reject(call, SipFinal(480, "Temporarily Unavailable"))
                return
            if ringing.done() and not connected.done() and not sip_end.done():
                if call.state in (CallState.INCOMING, CallState.EARLY):
                    call.ring()
                await asyncio.wait(
                    (connected, sip_end, tg_end), return_when=asyncio.FIRST_COMPLETED
                )
            if sip_end.done():  # CANCEL from the PBX
                handle.hangup()
                return
            if tg_end.done() and not connected.done():
                end: TgEnded = tg_end.result()
                self._reject(
                    call,
                    ended_status(
                        end.reason.value,
                        by_remote=end.by_remote,
                        ringing=handle.ringing.is_set(),
                        error=end.error,
                    ),
                )
                return
            if call.state in (CallState.INCOMING, CallState.EARLY):
                call.answer()
                self.stats["bridged"] += 1
            peer = handle.peer_id
            call.listeners.append(
                lambda c, ev: self._dtmf(session_id, peer, c, ev) if isinstance(ev, Dtmf) else None
            )
            with self._counted(line_id):
                await asyncio.wait((sip_end, tg_end), return_when=asyncio.FIRST_COMPLETED)
            if sip_end.done():
                handle.hangup()
            else:
                with contextlib.suppress(Exception):
                    await call.hangup()
        finally:
            for t in tasks:
                t.cancel()

    def _reject(self, call: SipCall, final: SipFinal) -> None:
        self.stats["failed"] += 1
        log.info("SIP call %s refused: %d %s", call.invite.call_id, final.status, final.reason)
        if call.state in (CallState.INCOMING, CallState.EARLY):
            call.reject(final.status, final.reason, final.headers)

    def add_dtmf_listener(self, cb: DtmfListener) -> None:
        """``cb(session_id, user_id, digit)`` for every digit the PBX sends during a
        connected call (the in-chat keypad and caller info build on this)."""
        self._dtmf_listeners.append(cb)

    def _dtmf(self, session_id: int, user_id: int, call: SipCall, event: Dtmf) -> None:
        # Digits may be PINs: only the method is logged.
        log.debug("call %s: DTMF received (%s)", call.invite.call_id, event.method)
        for cb in list(self._dtmf_listeners):
            try:
                cb(session_id, user_id, event)
            except Exception:
                log.exception("DTMF listener failed")

    # -- Telegram → SIP -------------------------------------------------------------------

    async def _on_tg_incoming(self, session_id: int, handle: CallHandle) -> None:
        self.stats["tg_to_sip"] += 1
        lines = {
            line.id: line for line in self.sip.table.lines.values() if line.session_id == session_id
        }
        caller = await self._caller_info(session_id, handle.peer_id)
        candidate = self.candidates.take(session_id, handle.peer_id, self._loop.time())
        forks = plan_forks(self._callable(lines), candidate, caller)
        service = self.services.get(session_id)
        ring_limit = self.tg_ring_timeout
        if service is not None and service.answer_timeout is not None:
            ring_limit = min(ring_limit, service.answer_timeout)
        now = self._loop.time()
        hunt = Hunt(forks, self.group_timeout, now + ring_limit)
        out = _Outgoing(session_id, handle, hunt, lines)
        self._spawn(self._watch_caller(out))
        await self._act(out, hunt.start(now))

    def _callable(self, lines: dict[int, SipLine]) -> list[SipLine]:
        """The lines a call can go out on now: a registering line (PBX → gateway, gateway →
        PBX) only while registered (§8.5: unregistered lines are skipped)."""
        out = []
        for line in lines.values():
            status = self.sip.line_status(line.id)
            if status is None:
                continue
            if line.kind is not LineKind.IP_IP and not status.registered:
                continue
            out.append(line)
        return out

    async def _caller_info(self, session_id: int, user_id: int) -> CallerInfo:
        service = self.services.get(session_id)
        if service is None:
            return CallerInfo(user_id)
        try:
            user = await asyncio.wait_for(service.client.get_entity(user_id), 5.0)
        except Exception:
            return CallerInfo(user_id)
        return CallerInfo(
            user_id,
            phone=str(getattr(user, "phone", "") or ""),
            username=str(getattr(user, "username", "") or ""),
            first_name=str(getattr(user, "first_name", "") or ""),
            last_name=str(getattr(user, "last_name", "") or ""),
        )

    async def _watch_caller(self, out: _Outgoing) -> None:
        """The Telegram caller hanging up during the hunt cancels every fork."""
        await asyncio.shield(out.handle.ended)
        if not out.hunt.done:
            await self._act(out, out.hunt.abort())

    def _arm(self, out: _Outgoing) -> None:
        if out.timer is not None:
            out.timer.cancel()
            out.timer = None
        deadline = out.hunt.deadline
        if deadline is not None:
            out.timer = self._loop.call_at(deadline, self._tick, out)

    def _tick(self, out: _Outgoing) -> None:
        out.timer = None
        self._spawn(self._act(out, out.hunt.tick(self._loop.time())))

    async def _act(self, out: _Outgoing, actions: list[HuntAction]) -> None:
        for action in actions:
            if isinstance(action, Invite):
                await self._invite(out, action.fork)
            elif isinstance(action, Cancel):
                leg = out.legs.get(action.fork)
                if leg is not None:
                    self._spawn(self._end_leg(leg))
            elif isinstance(action, Routed):
                self._spawn(self._bridge(out, out.legs[action.fork], out.hunt.forks[action.fork]))
            elif isinstance(action, Failed):
                await self._hunt_failed(out, action)
        self._arm(out)

    async def _invite(self, out: _Outgoing, index: int, challenged: SipCall | None = None) -> None:
        """INVITE for fork ``index``; ``challenged`` is its leg refused with 401/407, answered
        once with the line's credentials (gateway → PBX lines, RFC 3261 §22.2)."""
        fork = out.hunt.forks[index]
        line = out.lines[fork.line_id]
        target = out.targets.get(index)
        if target is None:
            target = await self.sip.call_target(fork.line_id, fork.number)
        if target is None:
            await self._act(
                out, out.hunt.on_final(index, 480, "Line unavailable", self._loop.time())
            )
            return
        out.targets[index] = target
        uri = target.from_uri
        if fork.caller_id:
            uri = f"sip:{fork.caller_id}@{uri.split('@', 1)[-1]}"
        from_ = f"<{uri}>" if not fork.caller_name else f"{quote(fork.caller_name)} <{uri}>"
        headers: tuple[tuple[str, str], ...] = (
            *target.headers,
            *(("Route", r) for r in target.routes),
        )
        if challenged is not None:
            resp = challenged.final
            assert resp is not None
            assert target.credentials is not None
            proxy = resp.status == 407
            try:
                value = target.credentials.authorize(
                    resp.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"),
                    "INVITE",
                    target.request_uri,
                )
            except AuthError as exc:
                log.warning("line %d: cannot answer the challenge: %s", fork.line_id, exc)
                await self._act(
                    out, out.hunt.on_final(index, resp.status, resp.reason, self._loop.time())
                )
                return
            headers = (*headers, ("Proxy-Authorization" if proxy else "Authorization", value))
        policy = MediaPolicy.from_line(line, pcm_rate=PCM_RATE)
        try:
            leg = await self.sip.ua.invite(
                target.request_uri,
                target.peer,
                policy=policy,
                from_=from_,
                extra_headers=headers,
                retry_of=challenged,
            )
        except Exception as exc:  # transport refused, no RTP port
            log.warning("line %d: INVITE not sent: %s", fork.line_id, exc)
            await self._act(
                out, out.hunt.on_final(index, 503, "Service Unavailable", self._loop.time())
            )
            return
        out.legs[index] = leg
        leg.listeners.append(lambda call, ev: self._leg_event(out, index, call, ev))
        if out.hunt.done:  # the caller hung up while the INVITE went out
            self._spawn(self._end_leg(leg))

    def _leg_event(self, out: _Outgoing, index: int, leg: SipCall, event: CallEvent) -> None:
        if isinstance(event, Answered):
            self._spawn(self._act(out, out.hunt.on_answer(index)))
        elif isinstance(event, Ended) and not out.hunt.done:
            target = out.targets.get(index)
            if (
                event.code in (401, 407)
                and index not in out.challenged
                and target is not None
                and target.credentials is not None
                and leg.final is not None
            ):
                out.challenged.add(index)
                self._spawn(self._invite(out, index, challenged=leg))
                return
            self._spawn(
                self._act(
                    out, out.hunt.on_final(index, event.code, event.reason, self._loop.time())
                )
            )
        elif isinstance(event, Dtmf):
            self._dtmf(out.session_id, out.handle.peer_id, leg, event)

    @staticmethod
    async def _end_leg(leg: SipCall) -> None:
        with contextlib.suppress(Exception):
            await leg.hangup()

    async def _hunt_failed(self, out: _Outgoing, failed: Failed) -> None:
        self.stats["failed"] += 1
        handle = out.handle
        if failed.no_lines:
            log.warning("session %d: No lines for call", out.session_id)
        else:
            log.info(
                "session %d: call not routed: %d %s", out.session_id, failed.status, failed.reason
            )
        if not handle.ended.done():
            if failed.busy and out.callback is None:
                handle.decline()
            elif out.callback is None:
                # Product spec 9.1 step 7: busy only when every final was 486/600.
                handle.hangup(EndReason.HANGUP)
            else:
                handle.hangup()
        if out.callback is not None:
            await self._tell(out.session_id, handle.peer_id, failed)
        # The administrator hears of it per line: the lines tried, or (no line was eligible)
        # every line of the session with "No lines for call".
        if failed.no_lines:
            tried = sorted(out.lines)
            text = "No lines for call"
        else:
            tried = sorted({f.line_id for f in out.hunt.forks})
            text = f"{failed.status} {failed.reason}"
        for line_id in tried:
            count = self._failures.get(line_id, 0) + 1
            self._failures[line_id] = count
            if self.notices is not None:
                try:
                    await self.notices.call_failures(line_id, count, text)
                except Exception as exc:
                    log.warning("notification failed: %s", type(exc).__name__)

    async def _bridge(self, out: _Outgoing, leg: SipCall, fork: Fork) -> None:
        handle = out.handle
        if handle.ended.done():
            await self._end_leg(leg)
            return
        log.info(
            "session %d: line %d answered; accepting the Telegram call",
            out.session_id,
            fork.line_id,
        )
        try:
            if out.callback is not None:
                out.callback.call = leg
            else:
                await handle.accept(SipLegPort(leg))
        except CallServiceError as exc:
            log.warning("session %d: cannot accept the Telegram call: %s", out.session_id, exc)
            await self._end_leg(leg)
            return
        self.stats["bridged"] += 1
        self._failures.pop(fork.line_id, None)
        sip_end = self._loop.create_task(leg.ended.wait())
        tg_end = asyncio.ensure_future(asyncio.shield(handle.ended))
        try:
            with self._counted(fork.line_id):
                await asyncio.wait((sip_end, tg_end), return_when=asyncio.FIRST_COMPLETED)
            if sip_end.done():
                handle.hangup()
            else:
                await self._end_leg(leg)
        finally:
            sip_end.cancel()
            tg_end.cancel()

    # -- Callback (§9.3) ----------------------------------------------------------------------

    async def _callback(self, message: IncomingMessage) -> bool:
        """Calls the user back and, once they answer, hunts the PBX with their text as the
        number. False when no line suits the text (the message goes on to the Inline bot or
        the Autoreply)."""
        sid, user_id = message.session_id, message.sender_id
        lines = {ln.id: ln for ln in self.sip.table.lines.values() if ln.session_id == sid}
        caller = CallerInfo(
            user_id,
            phone=message.sender_phone,
            username=message.sender_username,
            first_name=message.sender_name,
        )
        forks = plan_forks(self._callable(lines), message.text, caller)
        service = self.services.get(sid)
        if not forks or service is None:
            return False
        if any(h.peer_id == user_id for h in service.active):
            return True  # already in a call with this user: the message changes nothing
        self.candidates.take(sid, user_id, self._loop.time())  # used now
        port = SipLegPort(None)
        try:
            handle = await asyncio.wait_for(service.call(user_id, port), RPC_TIMEOUT)
        except CallRefused as exc:
            status = refusal_status(exc.name)
            final = CALLBACK_RESTRICTED if status.status == 403 else status
            await self._tell(sid, user_id, Failed(False, final.status, final.reason))
            return True
        except (CallServiceError, TimeoutError) as exc:
            log.warning("session %d: callback not placed: %s", sid, type(exc).__name__)
            return True
        self.stats["callbacks"] = self.stats.get("callbacks", 0) + 1
        connected = self._loop.create_task(handle.connected.wait())
        ended = asyncio.ensure_future(asyncio.shield(handle.ended))
        try:
            await asyncio.wait((connected, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            ended.cancel()
        if not handle.connected.is_set():
            return True  # not answered: the call ended by Telegram's ring limit
        now = self._loop.time()
        hunt = Hunt(forks, self.group_timeout, now + self.group_timeout * len(forks))
        out = _Outgoing(sid, handle, hunt, lines, callback=port)
        self._spawn(self._watch_caller(out))
        await self._act(out, hunt.start(now))
        return True

    async def _tell(self, session_id: int, user_id: int, failed: Failed) -> None:
        """Posts why a Callback did not connect in the chat with the user."""
        if self.messenger is None:
            return
        text = "No lines for call" if failed.no_lines else f"{failed.status} {failed.reason}"
        try:
            await self.messenger(session_id).send_message(user_id, f"Call failed: {text}")
        except Exception as exc:
            log.warning("session %d: cannot post the call failure: %s", session_id, exc)

    # -- messages processing (§11) ---------------------------------------------------------

    def on_message(self, message: IncomingMessage) -> None:
        """A session manager message listener."""
        if message.sender_is_bot or not message.text:
            return
        self._spawn(self._process_message(message))

    async def _process_message(self, message: IncomingMessage) -> None:
        rec = await self.store.get_session(message.session_id)
        if rec is None or not rec.settings.messages_processing:
            return
        settings = rec.settings
        self.candidates.remember(
            message.session_id, message.sender_id, message.text, self._loop.time()
        )
        if settings.callback and await self._callback(message):
            return
        if self.messenger is None:
            return
        values = {
            "text": message.text,
            "userid": str(message.sender_id),
            "username": message.sender_username,
            "phone": message.sender_phone.lstrip("+"),
            "name": message.sender_name,
        }
        try:
            messenger = self.messenger(message.session_id)
            if settings.inline_bot_enabled and settings.inline_bot:
                query = _fill(settings.inline_query or "{text}", values)
                posted = await messenger.post_inline_result(
                    message.sender_id, settings.inline_bot, query
                )
                if posted is not None:
                    return
            if settings.autoreply_enabled and settings.autoreply_text:
                await messenger.send_message(
                    message.sender_id, _fill(settings.autoreply_text, values)
                )
        except Exception as exc:
            log.warning(
                "session %d: message processing failed: %s",
                message.session_id,
                type(exc).__name__,
            )


CALLBACK_RESTRICTED = SipFinal(380, "Callback is restricted")
"""product.md §14.1: the user's privacy (or a block) forbids the session's call."""


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with ``{text}``-style placeholders filled; unknown ones stay as typed."""
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out
