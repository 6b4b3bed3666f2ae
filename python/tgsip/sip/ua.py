"""A minimal SIP user agent core over the transaction layer (RFC 3261 §8, §12, §13, §15).

:class:`UserAgent` is the I/O shell: it owns the UDP/TCP/TLS transports, one
:class:`~tgsip.sip.transaction.TransactionLayer` and ONE asyncio timer armed at the layer's
next deadline, and is the UAS and UAC core:

* UAS: each new INVITE becomes a :class:`~tgsip.sip.call.SipCall` (offer negotiated, media line
  opened from the :class:`~tgsip.media.engine.MediaEngine` given to the UA). With ``on_call``
  set the application decides (ring, answer, reject); without it the UA sends 180 and answers
  after ``ring_seconds`` (accept-all). The 2xx is retransmitted by
  :class:`Uas2xxRetransmitter` until the ACK (§13.3.1.4); CANCEL (200 and 487, §9.2); every
  in-dialog request (BYE, re-INVITE, INFO, OPTIONS, REFER, NOTIFY) goes to its call; OPTIONS
  outside a dialog 200; REGISTER (200, bindings kept in memory); anything else 501.
* UAC: :meth:`UserAgent.invite` returns a :class:`~tgsip.sip.call.SipCall` for an outgoing call,
  :meth:`UserAgent.bye`, :meth:`UserAgent.register` (answers a 401/407 digest challenge once
  with :class:`tgsip.sip.auth.DigestClient`), :meth:`UserAgent.request` for any non-INVITE.

Without a media engine the UA still answers calls (signalling only, for benchmarks): the SDP then
names ``media_port`` and no media flows.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from tgsip.media.engine import Line, MediaEngine
from tgsip.media.events import DtmfReceived, MediaEvent, RtpTimeout
from tgsip.sip.auth import AuthError, AuthResult, DigestClient, DigestServer
from tgsip.sip.call import CallState, SipCall
from tgsip.sip.dialog import Dialog
from tgsip.sip.message import (
    Request,
    Response,
    SipParseError,
    check_request,
    make_response,
    new_branch,
    new_request,
    new_tag,
)
from tgsip.sip.offer import MediaPolicy
from tgsip.sip.policy import Reply, RequestPolicy
from tgsip.sip.transaction import (
    INF,
    Action,
    Deliver,
    InviteClient,
    InviteServer,
    NonInviteServer,
    Peer,
    Send,
    State,
    TimedOut,
    Timers,
    Transaction,
    TransactionLayer,
)
from tgsip.sip.transport import StreamServer, UdpTransport, response_peer

__all__ = ["Uas2xxRetransmitter", "UserAgent"]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, REGISTER"


class Uas2xxRetransmitter:
    """Retransmits a 2xx to INVITE until the ACK arrives (RFC 3261 §13.3.1.4).

    Interval starts at T1 and doubles up to T2; after 64*T1 without ACK it gives up and sets
    ``gave_up`` (the TU should then end the dialog with BYE). Driven by the layer's heap.
    """

    def __init__(
        self,
        txn: InviteServer,
        response: Response,
        now: float,
        timers: Timers,
        on_give_up: Callable[[], list[Action]] | None = None,
    ) -> None:
        self.txn = txn
        self.on_give_up = on_give_up
        self.response = response
        self.timers = timers
        self._interval = timers.t1
        self._next = now + timers.t1
        self._give_up = now + 64 * timers.t1
        self.gave_up = False
        self.sent = 0

    @property
    def deadline(self) -> float:
        """Next retransmission or give-up time (``inf`` when stopped)."""
        return min(self._next, self._give_up)

    def stop(self) -> None:
        """The ACK arrived."""
        self._next = self._give_up = INF

    def on_timer(self, now: float) -> list[Action]:
        """Retransmit or give up."""
        if now >= self._give_up:
            self.gave_up = True
            self.stop()
            return self.on_give_up() if self.on_give_up is not None else []
        if now < self._next:
            return []
        self._interval = min(2 * self._interval, self.timers.t2)
        self._next = now + self._interval
        self.sent += 1
        return [Send(self.txn, self.response, self.txn.peer)]


class UserAgent:
    """UAS + UAC core bound to ``host`` (IPv4 or IPv6 literal)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        timers: Timers | None = None,
        codecs: tuple[str, ...] = ("alaw", "mulaw", "opus"),
        dtmf_methods: tuple[str, ...] = ("rfc2833",),
        media: MediaEngine | None = None,
        media_port: int = 9,
        ring_seconds: float = 0.0,
        send_ringing: bool = True,
    ) -> None:
        self.host = host
        self.layer = TransactionLayer(timers)
        self.policy = MediaPolicy.of(codecs, dtmf_methods)
        """The default media policy of calls (a line's codecs and DTMF methods)."""
        self.media = media
        self.media_port = media_port
        """Signalling-only mode (no ``media`` engine): the port the SDP names."""
        self.ring_seconds = ring_seconds
        self.send_ringing = send_ringing
        self.udp: UdpTransport | None = None
        self.tcp: StreamServer | None = None
        self.tls: StreamServer | None = None
        self.ports: dict[str, int] = {}
        self.calls: dict[tuple[str, str, str], SipCall] = {}
        """Established calls by dialog ID."""
        self.pending: dict[int, SipCall] = {}
        """Calls whose INVITE (in or out) has no final response yet, by transaction id."""
        self.registrations: dict[str, tuple[str, float]] = {}
        self.stats: dict[str, int] = {"calls_answered": 0, "calls_ended": 0, "cancelled": 0}
        self.stats["2xx_retransmissions"] = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed = INF
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._lines: dict[int, SipCall] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.registrar_auth: tuple[DigestServer, Callable[[str, str], str | None]] | None = None
        """When set, REGISTER must pass this digest challenge (server, HA1 lookup)."""
        self.on_invite: Callable[[Request], None] | None = None
        """Called with each new (out-of-dialog) INVITE once its call is prepared."""
        self.request_policy: RequestPolicy | None = None
        """When set, screens every incoming request (:mod:`tgsip.sip.policy`)."""
        self.on_call: Callable[[SipCall], None] | None = None
        """Given each new incoming call; it must ring/answer/reject it. None = accept all."""
        self.policy_for: Callable[[Request], MediaPolicy | None] | None = None
        """The media policy for an incoming INVITE (its line's), default :attr:`policy`."""

    # -- life cycle ---------------------------------------------------------------------

    async def start(
        self,
        *,
        udp_port: int | None = 0,
        tcp_port: int | None = None,
        tls_port: int | None = None,
        tls_server: ssl.SSLContext | None = None,
        tls_client: ssl.SSLContext | None = None,
    ) -> None:
        """Open the transports (``None`` = not this one, 0 = any free port)."""
        self._loop = asyncio.get_running_loop()
        if self.media is not None:
            self.media.attach(self._loop)
            self.media.add_listener(self._on_media_event)
        if udp_port is not None:
            self.udp = await UdpTransport.listen(self.host, udp_port, self._on_message)
            self.ports["UDP"] = self.udp.local[1]
        if tcp_port is not None:
            self.tcp = StreamServer(self._on_message)
            self.ports["TCP"] = (await self.tcp.listen(self.host, tcp_port))[1]
        if tls_port is not None and tls_server is not None:
            self.tls = StreamServer(self._on_message, ssl_context=tls_server)
            self.tls.ssl_client = tls_client
            self.ports["TLS"] = (await self.tls.listen(self.host, tls_port))[1]

    async def close(self) -> None:
        """Close every transport and the timer."""
        if self._timer is not None:
            self._timer.cancel()
        if self.udp is not None:
            self.udp.close()
        for s in (self.tcp, self.tls):
            if s is not None:
                await s.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        for call in [*self.calls.values(), *self.pending.values()]:
            call._end(503, "Shutting down", by_peer=False)
        for task in list(self._tasks):
            task.cancel()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # -- timer --------------------------------------------------------------------------

    def _rearm(self) -> None:
        at = self.layer.next_deadline()
        at_f = INF if at is None else at
        if at_f == self._armed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = at_f
        if at is not None and self._loop is not None:
            self._timer = self._loop.call_at(at, self._on_tick)

    def _on_tick(self) -> None:
        self._timer = None
        self._armed = INF
        self._run(self.layer.tick(self._now()))
        self._rearm()

    # -- output -------------------------------------------------------------------------

    def _send(self, msg: Request | Response, peer: Peer) -> None:
        data = msg.to_bytes()
        if peer.transport == "UDP":
            if self.udp is not None:
                self.udp.send(data, peer)
        elif peer.transport == "TCP":
            if self.tcp is not None:
                self.tcp.send(data, peer)
        elif self.tls is not None:
            self.tls.send(data, peer)

    def _run(self, acts: list[Action]) -> None:
        for a in acts:
            if isinstance(a, Send):
                self._send(a.message, a.peer)
            elif isinstance(a, Deliver):
                if isinstance(a.message, Request):
                    self._on_request(a.txn, a.message, a.peer)
                else:
                    self._on_response(a.txn, a.message, a.peer)
            elif isinstance(a, TimedOut):
                self._on_timeout(a.txn)

    # -- input --------------------------------------------------------------------------

    def _on_message(self, msg: Request | Response, peer: Peer) -> None:
        now = self._now()
        try:
            if isinstance(msg, Request):
                if msg.method != "ACK":
                    peer = response_peer(msg, peer)
                if self.request_policy is not None and not self.request_policy.admit(msg, peer):
                    self.stats["dropped"] = self.stats.get("dropped", 0) + 1
                    return
            acts = self.layer.receive(msg, peer, now)
            self._run(acts)
        except (SipParseError, ValueError) as exc:
            # A header the core needed later than the parser's checks was unusable: the
            # message is dropped, the UA keeps running.
            self.stats["rejected"] = self.stats.get("rejected", 0) + 1
            log.debug("dropped %s from %s: %s", type(msg).__name__, peer.host, exc)
        self._rearm()

    def _respond(
        self,
        txn: Transaction | None,
        req: Request,
        status: int,
        reason: str,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
    ) -> Response:
        resp = make_response(req, status, reason, to_tag=to_tag)
        for n, v in headers:
            resp.add(n, v)
        if body:
            resp.add("Content-Type", content_type)
            resp.body = body
        if isinstance(txn, InviteServer | NonInviteServer):
            self._run(self.layer.respond(txn, resp, self._now()))
        return resp

    def _contact(self, transport: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = self.ports.get(transport, 5060)
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:tgsip@{host}:{port}{t}>"

    def _on_request(self, txn: Transaction | None, req: Request, peer: Peer) -> None:
        m = req.method
        if self.request_policy is not None and m not in ("ACK", "CANCEL") and req.to.tag is None:
            verdict = self.request_policy.decide(req, peer)
            if isinstance(verdict, Reply):
                self._respond(txn, req, verdict.status, verdict.reason, new_tag(), verdict.headers)
                return
        if m == "ACK":
            call = self.calls.get(Dialog.key_of(req, incoming=True))
            if call is not None:
                call.on_ack(req)
            return
        if m == "INVITE":
            assert isinstance(txn, InviteServer)
            self._on_invite(txn, req, peer)
        elif m == "CANCEL":
            inv = self.layer.find_invite_for_cancel(req)
            if inv is None or inv.state is not State.PROCEEDING:
                self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
                return
            self._respond(txn, req, 200, "OK")
            call = self.pending.pop(id(inv), None)
            if call is not None:
                call.on_cancel()
            else:
                self._respond(inv, inv.request, 487, "Request Terminated", to_tag=new_tag())
            self.stats["cancelled"] += 1
        elif m == "REGISTER":
            self._on_register(txn, req)
        elif req.to.tag is not None:
            call = self.calls.get(Dialog.key_of(req, incoming=True))
            if call is None:
                self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
                return
            assert isinstance(txn, NonInviteServer)
            call.on_request(txn, req)
        elif m == "OPTIONS":
            self._respond(txn, req, 200, "OK", headers=(("Allow", ALLOW),))
        elif m in ("BYE", "INFO", "REFER", "NOTIFY", "UPDATE"):
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
        else:
            self._respond(txn, req, 501, "Not Implemented", headers=(("Allow", ALLOW),))

    def _on_register(self, txn: Transaction | None, req: Request) -> None:
        if self.registrar_auth is not None and not self._authorized(txn, req):
            return
        aor = str(req.to.uri)
        contacts = req.contacts
        expires = req.expires if req.expires is not None else 3600
        headers: list[tuple[str, str]] = []
        if contacts is None or (contacts and expires == 0):
            self.registrations.pop(aor, None)
        elif contacts:
            c = contacts[0]
            exp = c.expires if c.expires is not None else expires
            self.registrations[aor] = (str(c.uri), self._now() + exp)
            headers.append(("Contact", f"<{c.uri}>;expires={exp}"))
        self._respond(txn, req, 200, "OK", headers=tuple(headers))

    def _authorized(self, txn: Transaction | None, req: Request) -> bool:
        """Digest check (RFC 3261 §22.4): 401 with challenges, 403 on failure."""
        assert self.registrar_auth is not None
        server, lookup = self.registrar_auth
        now = self._now()
        value = req.get("Authorization")
        if value is None:
            chal = tuple(("WWW-Authenticate", c) for c in server.challenges(now))
            self._respond(txn, req, 401, "Unauthorized", to_tag=new_tag(), headers=chal)
            return False
        verdict = server.verify(value, req.method, now, lookup, uri=req.uri)
        if verdict.result is AuthResult.OK:
            return True
        if verdict.result is AuthResult.STALE:
            chal = tuple(("WWW-Authenticate", c) for c in server.challenges(now, stale=True))
            self._respond(txn, req, 401, "Unauthorized", to_tag=new_tag(), headers=chal)
            return False
        self._respond(txn, req, 403, "Forbidden", to_tag=new_tag())
        return False

    def _on_invite(self, txn: InviteServer, req: Request, peer: Peer) -> None:
        try:
            _ = req.record_routes  # the parser reads it lazily; the dialog needs it
        except SipParseError as exc:
            self._respond(txn, req, exc.status or 400, exc.reason, to_tag=new_tag())
            return
        if req.to.tag is not None:  # re-INVITE
            call = self.calls.get(Dialog.key_of(req, incoming=True))
            if call is None:
                self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
                return
            call.on_request(txn, req)
            return
        refused = check_request(req, to_tag=new_tag())  # Require (420), body type (415)
        if refused is not None:
            self._run(self.layer.respond(txn, refused, self._now()))
            return
        policy = self.policy_for(req) if self.policy_for is not None else None
        call = SipCall(self, "uas", peer, req, policy or self.policy, self.media)
        if not call.prepare_incoming(txn):
            return
        self.pending[id(txn)] = call
        if self.on_invite is not None:
            self.on_invite(req)
        if self.on_call is not None:
            try:
                self.on_call(call)
            except Exception:  # the application's bug must not leave the INVITE hanging
                log.exception("on_call failed")
                if call.state in (CallState.INCOMING, CallState.EARLY):
                    call.reject(500, "Server Internal Error")
            return
        if self.send_ringing:
            call.ring()
        if self.ring_seconds > 0 and self._loop is not None:
            self._loop.call_later(self.ring_seconds, self._answer_later, call)
        else:
            call.answer()

    def _answer_later(self, call: SipCall) -> None:
        if call.state in (CallState.INCOMING, CallState.EARLY):
            call.answer()
            self._rearm()

    def call_for(self, request: Request) -> SipCall | None:
        """The call of an incoming INVITE (for code that only sees the request, such as an
        ``on_invite`` callback), while it is pending or established."""
        for call in self.pending.values():
            if call.invite is request:
                return call
        for call in self.calls.values():
            if call.invite is request:
                return call
        return None

    # -- calls' hooks -------------------------------------------------------------------

    def _dialog_established(self, call: SipCall) -> None:
        assert call.dialog is not None
        self.calls[call.dialog.key] = call
        if call.role == "uas":
            self.stats["calls_answered"] += 1
            for k, v in list(self.pending.items()):
                if v is call:
                    del self.pending[k]

    def _forget_call(self, call: SipCall) -> None:
        if call.dialog is not None and self.calls.get(call.dialog.key) is call:
            del self.calls[call.dialog.key]
        for k, v in list(self.pending.items()):
            if v is call:
                del self.pending[k]

    def _retransmit_2xx(
        self, call: SipCall, txn: InviteServer, resp: Response
    ) -> Uas2xxRetransmitter:
        def give_up() -> list[Action]:
            if call.retransmitter is rt:
                call.on_no_ack()
            return []

        rt = Uas2xxRetransmitter(txn, resp, self._now(), self.layer.timers, give_up)
        self.layer.schedule(rt)
        self._rearm()
        return rt

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("call task failed: %r", task.exception())

    def _send_in_transaction(self, req: Request, peer: Peer) -> None:
        """Send a non-INVITE request whose response nobody awaits."""
        self._spawn(self.request(req, peer))

    async def _send_invite(self, call: SipCall, req: Request) -> InviteClient:
        if call.peer.reliable:
            await self._connect(call.peer)
        txn, acts = self.layer.send_request(req, call.peer, self._now())
        assert isinstance(txn, InviteClient)
        self.pending[id(txn)] = call
        self._run(acts)
        self._rearm()
        return txn

    def _register_line(self, line: Line, call: SipCall) -> None:
        self._lines[line.id] = call

    def _unregister_line(self, line: Line) -> None:
        self._lines.pop(line.id, None)

    def _on_media_event(self, event: MediaEvent) -> None:
        call = self._lines.get(event.line_id)
        if call is None:
            return
        if isinstance(event, DtmfReceived):
            call.on_media_dtmf(event.digit, event.method, event.duration_ms)
        elif isinstance(event, RtpTimeout):
            call.on_rtp_timeout()
            self._rearm()

    # -- UAC ----------------------------------------------------------------------------

    def _on_response(self, txn: Transaction | None, resp: Response, peer: Peer) -> None:
        if isinstance(txn, InviteClient) or (txn is None and resp.cseq.method == "INVITE"):
            call = self.pending.get(id(txn)) if txn is not None else None
            if call is None:
                call = self.calls.get(Dialog.key_of(resp, incoming=True))
            if call is not None:
                if resp.status >= 200 and txn is not None:
                    self.pending.pop(id(txn), None)
                call.on_invite_response(txn, resp)
        if txn is None or resp.status < 200:
            return
        fut = self._pending.pop(id(txn), None)
        if fut is not None and not fut.done():
            fut.set_result(resp)

    def _on_timeout(self, txn: Transaction) -> None:
        call = self.pending.pop(id(txn), None)
        if call is not None:
            call.on_invite_response(
                txn if isinstance(txn, InviteClient) else None,
                make_response(txn.request, 408, "Request Timeout"),
            )
            return
        fut = self._pending.pop(id(txn), None)
        if fut is not None and not fut.done():
            fut.set_result(make_response(txn.request, 408, "Request Timeout"))

    async def _connect(self, peer: Peer) -> None:
        server = self.tcp if peer.transport == "TCP" else self.tls
        if server is None:
            raise ValueError(f"{peer.transport} transport not started")
        if (peer.transport, peer.host, peer.port) not in server.connections:
            conn = await server.connect(peer.host, peer.port, server_hostname=peer.host)
            if conn.peer is not None and conn.peer != peer:
                server.connections[(peer.transport, peer.host, peer.port)] = conn

    async def request(self, req: Request, peer: Peer) -> Response:
        """Send ``req`` in a client transaction; returns its final response (408 on timeout)."""
        if peer.reliable:
            await self._connect(peer)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()
        txn, acts = self.layer.send_request(req, peer, self._now())
        self._pending[id(txn)] = fut
        self._run(acts)
        self._rearm()
        try:
            return await fut
        finally:
            self._pending.pop(id(txn), None)

    def new_request(self, method: str, uri: str, peer: Peer, **kw: object) -> Request:
        """An out-of-dialog request from us with our Via and Contact."""
        return new_request(
            method,
            uri,
            f"<sip:tgsip@[{self.host}]>" if ":" in self.host else f"<sip:tgsip@{self.host}>",
            f"<{uri}>",
            new_branch()[7:] + "@tgsip",
            1,
            self.host,
            via_port=self.ports.get(peer.transport),
            transport=peer.transport,
            contact=self._contact(peer.transport) if method in ("INVITE", "REGISTER") else None,
            **kw,  # type: ignore[arg-type]
        )

    async def invite(
        self,
        uri: str,
        peer: Peer,
        *,
        policy: MediaPolicy | None = None,
        from_: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        retry_of: SipCall | None = None,
    ) -> SipCall:
        """Place a call: opens the media line, sends the INVITE with our offer and returns the
        :class:`~tgsip.sip.call.SipCall` at once; await :meth:`SipCall.wait_answer` or read its
        events for ringing, early media, the answer or the end.

        ``retry_of`` resubmits a call refused with 401/407 (``extra_headers`` then carry the
        credentials): same Call-ID and From (tag included), CSeq one higher (RFC 3261
        §8.1.3.5, §22.2)."""
        req = self.new_request("INVITE", uri, peer)
        if retry_of is not None:
            old = retry_of.invite
            from_ = old.get("From")
            cseq = f"{old.cseq.number + 1} INVITE"
            keep = {"Call-ID": old.call_id, "CSeq": cseq}
            req.headers = [(n, keep.get(n, v)) for n, v in req.headers]
        if from_ is not None:
            value = from_ if ";tag=" in from_ else f"{from_};tag={new_tag()}"
            req.headers = [(n, value if n == "From" else v) for n, v in req.headers]
        call = SipCall(self, "uac", peer, req, policy or self.policy, self.media)
        body = call.prepare_outgoing()
        req.body = body
        req.headers.append(("Content-Type", "application/sdp"))
        req.headers.append(("Allow", ALLOW))
        for n, v in extra_headers:
            req.add(n, v)
        try:
            txn = await self._send_invite(call, req)
        except BaseException:
            call._end(503, "Could not send", by_peer=False)
            raise
        call.started(txn)
        return call

    async def cancel(self, invite: Request, peer: Peer) -> Response:
        """CANCEL a pending INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number,
        top Via and Route set; the INVITE then completes with 487."""
        req = Request(method="CANCEL", uri=invite.uri)
        req.headers.append(("Via", str(invite.top_via)))
        req.headers.append(("Max-Forwards", "70"))
        for r in invite.get_all("Route"):
            req.headers.append(("Route", r))
        for name in ("From", "To", "Call-ID"):
            value = invite.get(name)
            if value is not None:
                req.headers.append((name, value))
        req.headers.append(("CSeq", f"{invite.cseq.number} CANCEL"))
        return await self.request(req, peer)

    async def bye(self, call: SipCall) -> Response:
        """End an established call with BYE (§15.1.1); returns the BYE's response."""
        resp = await call.hangup()
        if resp is None:
            raise ValueError("the call is not established")
        return resp

    async def register(
        self,
        registrar: str,
        aor: str,
        peer: Peer,
        *,
        expires: int = 3600,
        credentials: DigestClient | None = None,
    ) -> Response:
        """REGISTER ``aor`` (§10.2); a 401/407 is answered once with ``credentials``."""
        call_id = new_branch()[7:] + "@tgsip"
        resp: Response | None = None
        auth: tuple[tuple[str, str], ...] = ()
        for cseq in (1, 2):
            req = new_request(
                "REGISTER",
                registrar,
                f"<{aor}>",
                f"<{aor}>",
                call_id,
                cseq,
                self.host,
                via_port=self.ports.get(peer.transport),
                transport=peer.transport,
                contact=self._contact(peer.transport),
                extra_headers=(("Expires", str(expires)), *auth),
            )
            resp = await self.request(req, peer)
            if resp.status not in (401, 407) or credentials is None or cseq == 2:
                return resp
            chal_name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            resp_name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            try:
                value = credentials.authorize(resp.get_all(chal_name), "REGISTER", registrar)
            except AuthError:
                return resp
            auth = ((resp_name, value),)
        assert resp is not None
        return resp
