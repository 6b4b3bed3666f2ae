"""One SIP call leg with real media: :class:`SipCall` (RFC 3261 §13-15, RFC 3264, RFC 6026).

A :class:`SipCall` ties an INVITE dialog to a media-core :class:`~tgsip.media.engine.Line`.
It is driven by :class:`tgsip.sip.ua.UserAgent`, which owns the transports and the transaction
layer and hands the call every message of its dialog; the call never reads the clock itself
(timers are the transaction layer's and the UA's).

UAS (incoming INVITE): the offer is negotiated as the INVITE arrives (488/400 otherwise) and
the media line opened, then the application calls :meth:`ring` (180, or 183 with the SDP
answer = early media), :meth:`answer` (200 with the answer; retransmitted until the ACK,
§13.3.1.4 / RFC 6026) or :meth:`reject`. An INVITE without SDP gets our offer in the 200 and
the answer is read from the ACK.

UAC (outgoing, :meth:`UserAgent.invite <tgsip.sip.ua.UserAgent.invite>`): the line opens with
our first codec and its address goes into the offer; 180 -> :class:`Ringing`, 18x with SDP ->
:class:`EarlyMedia` (the line starts sending to the announced address), 2xx -> ACK and
:class:`Answered`; a non-2xx final -> :class:`Ended`. :meth:`cancel` sends CANCEL (§9.1)
once a provisional response has arrived. When the answer picks another codec than the line was
opened with, the line is reopened and a re-INVITE announces its new port.

Both: :meth:`hangup` (BYE), UPDATE (RFC 3311) answered, :meth:`hold` / :meth:`resume`
(re-INVITE with ``sendonly`` / ``sendrecv``; the media line stops/starts sending),
:meth:`change_codecs` (re-INVITE that reopens the line with the new codec), :meth:`send_dtmf`
by the line's DTMF method (RFC 4733 through the media line, SIP INFO, or in-band tones),
:meth:`refer` (RFC 3515 transfer), in-dialog OPTIONS. Received digits (RFC 4733 and in-band
from the media line, INFO from signalling) become :class:`Dtmf` events; a peer's re-INVITE with
``sendonly``/``inactive`` gives :class:`Held`, back to ``sendrecv`` :class:`Resumed`; a REFER
gives :class:`TransferRequested`, answered by :meth:`transfer_progress`. The session's end
closes the media line and gives one :class:`Ended`.

Events are put on :attr:`SipCall.events` and passed to every callback in
:attr:`SipCall.listeners`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgsip.media.config import LineConfig
from tgsip.media.engine import Line, MediaEngine
from tgsip.media.errors import MediaCoreError
from tgsip.sip.dialog import Dialog, DialogError
from tgsip.sip.dtmf_info import DtmfInfoError, UnsupportedInfoType, build_info, parse_info
from tgsip.sip.message import Request, Response, new_tag
from tgsip.sip.offer import (
    MediaPolicy,
    OfferAnswerError,
    build_answer,
    line_config,
    make_line_offer,
    make_offer,
    negotiate_offer,
    parse_offer,
    read_answer,
    send_method,
)
from tgsip.sip.refer import (
    SIPFRAG,
    ReferError,
    parse_refer_to,
    parse_sipfrag,
    sipfrag,
    subscription_state,
)
from tgsip.sip.sdp import NegotiatedMedia, SessionDescription
from tgsip.sip.transaction import InviteClient, InviteServer, NonInviteServer, Peer, State

if TYPE_CHECKING:
    from tgsip.sip.ua import Uas2xxRetransmitter, UserAgent

__all__ = [
    "Answered",
    "CallError",
    "CallEvent",
    "CallState",
    "Dtmf",
    "EarlyMedia",
    "Ended",
    "Held",
    "Resumed",
    "Ringing",
    "SipCall",
    "TransferProgress",
    "TransferRequested",
    "needs_reopen",
]

log = logging.getLogger(__name__)

_session_ids = itertools.count(1)


class CallState(enum.StrEnum):
    """Where the call leg is."""

    INCOMING = "incoming"  # UAS: INVITE received, no final response yet
    CALLING = "calling"  # UAC: INVITE sent, no final response yet
    EARLY = "early"  # a provisional response with To tag was sent/received
    CONFIRMED = "confirmed"  # 2xx sent/received
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Ringing:
    """The peer rings (180) or we sent 180."""

    status: int = 180


@dataclass(frozen=True, slots=True)
class EarlyMedia:
    """A provisional response carried the SDP answer: media flows before the answer."""

    status: int = 183


@dataclass(frozen=True, slots=True)
class Answered:
    """The call was answered (2xx)."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A received digit; ``method`` is ``rfc2833``, ``info`` or ``inband``."""

    digit: str
    method: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Held:
    """The peer put us on hold (``by_peer``) or our hold was accepted."""

    by_peer: bool
    direction: str


@dataclass(frozen=True, slots=True)
class Resumed:
    """Media flows both ways again."""

    by_peer: bool


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The peer asks us to call ``target`` (REFER).

    Answer with :meth:`SipCall.transfer_progress`.
    """

    target: str
    referred_by: str | None


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A NOTIFY about our REFER: the status of the call the peer places."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The call leg ended: ``code`` is the final SIP status (200 for a BYE after answer)."""

    code: int
    reason: str
    by_peer: bool


CallEvent = (
    Ringing
    | EarlyMedia
    | Answered
    | Dtmf
    | Held
    | Resumed
    | TransferRequested
    | TransferProgress
    | Ended
)

_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE"


def needs_reopen(have: LineConfig, want: LineConfig) -> bool:
    """Whether a line opened as ``have`` cannot serve ``want`` (so a new line, on a new port,
    is needed): another codec, payload type or ptime, another telephone-event PT, or digits
    that must now be sent in-band. An answer that merely lacks telephone-event keeps the line
    (it receives the same; digits then go by INFO, which the line is not involved in)."""
    if (have.codec, have.payload_type, have.ptime_ms) != (
        want.codec,
        want.payload_type,
        want.ptime_ms,
    ):
        return True
    te_have, te_want = have.telephone_event_pt, want.telephone_event_pt
    if te_have is not None and te_want is not None and te_have != te_want:
        return True
    if want.dtmf_method == "inband" and have.dtmf_method != "inband":
        return True
    return have.detect_inband_dtmf != want.detect_inband_dtmf or have.opus != want.opus


class CallError(RuntimeError):
    """An operation that the call's state does not allow."""


class SipCall:
    """One call leg (see the module docstring). Created by the UA, not directly."""

    def __init__(
        self,
        ua: UserAgent,
        role: str,
        peer: Peer,
        invite: Request,
        policy: MediaPolicy,
        media: MediaEngine | None,
    ) -> None:
        self.ua = ua
        self.role = role
        self.peer = peer
        self.invite = invite
        self.policy = policy
        self.engine = media
        self.state = CallState.INCOMING if role == "uas" else CallState.CALLING
        self.dialog: Dialog | None = None
        self.line: Line | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.direction = "sendrecv"  # what we want
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.listeners: list[Callable[[SipCall, CallEvent], None]] = []
        self.acked = asyncio.Event()
        self.ended = asyncio.Event()
        self.answered = asyncio.Event()
        self.final: Response | None = None
        self.end_event: Ended | None = None
        self.retransmitter: Uas2xxRetransmitter | None = None
        self.ack: Request | None = None
        self.held_by_peer = False
        self.media_stats: dict[str, float | None] = {}
        """The media line's counters when the call ended (packets received, jitter, ...)."""
        self._local_tag = new_tag() if role == "uas" else (invite.from_.tag or "")
        self._txn: InviteServer | None = None
        self._ctxn: InviteClient | None = None
        self._answer_sdp: bytes = b""
        self._our_offer: SessionDescription | None = None
        self._sess_id = next(_session_ids)
        self._sess_version = 0
        self._last_media: bytes = b""
        self._provisional = False
        self._cancel_wanted = False
        self._reinvite: asyncio.Future[Response] | None = None
        self._reinvite_line: Line | None = None
        self._offer_in_ack = False
        self._refer_peer_subscribed = False
        self._last_notify: asyncio.Future[Response] | None = None

    # -- helpers ------------------------------------------------------------------------

    @property
    def local_tag(self) -> str:
        """Our tag in the dialog."""
        return self._local_tag

    def __repr__(self) -> str:
        return f"<SipCall {self.role} {self.invite.call_id} {self.state}>"

    def _emit(self, event: CallEvent) -> None:
        self.events.put_nowait(event)
        for cb in list(self.listeners):
            try:
                cb(self, event)
            except Exception:  # a listener's bug must not break signalling
                log.exception("call event listener failed")

    def _sdp_bytes(self, sd: SessionDescription) -> bytes:
        """Serialize with the o= version bumped only when the media changed (RFC 3264 §8)."""
        media_part = sd.to_bytes().split(b"\r\n", 2)[2]
        if self._last_media and media_part != self._last_media:
            self._sess_version += 1
        self._last_media = media_part
        host = sd.origin.split()[-1]
        iptype = "IP6" if ":" in host else "IP4"
        sd.origin = f"- {self._sess_id} {self._sess_version} IN {iptype} {host}"
        return sd.to_bytes()

    def _media_address(self, line: Line | None) -> tuple[str, int]:
        if line is None:
            return self.ua.host, self.ua.media_port
        host, port = line.local_address
        if host in ("0.0.0.0", "::"):
            host = self.ua.host
        return host, port

    def _open_line(self, cfg: LineConfig) -> Line | None:
        if self.engine is None:
            return None
        line = self.engine.open_line(cfg, pcm_endpoint=True)
        self.ua._register_line(line, self)
        return line

    def _close_line(self, line: Line | None) -> None:
        if line is None or self.engine is None:
            return
        self.ua._unregister_line(line)
        with contextlib.suppress(Exception):
            self.engine.close_line(line)

    def _apply(self, neg: NegotiatedMedia, *, reopen_ok: bool = True) -> bool:
        """Point the media line at ``neg``; True when it had to be reopened (new port).

        With ``reopen_ok`` False (after a re-offer naming exactly the line's payload types) a
        differing answer keeps the line as it is rather than moving to an unannounced port.
        """
        old = self.negotiated
        self.negotiated = neg
        reopened = False
        if self.engine is not None:
            cfg = line_config(self.policy, neg)
            if self.line is None or (reopen_ok and needs_reopen(self.line.config, cfg)):
                self._close_line(self.line)
                self.line = self._open_line(cfg)
                reopened = True
            assert self.line is not None
            if neg.remote_host not in ("0.0.0.0", "::"):
                self.line.start(neg.remote_host, neg.remote_port)
            self.line.set_sending(neg.direction in ("sendrecv", "sendonly"))
        was_held = old is not None and old.direction in ("recvonly", "inactive")
        now_held = neg.direction in ("recvonly", "inactive")
        if self.state is CallState.CONFIRMED or old is not None:
            if now_held and not was_held and self.direction == "sendrecv":
                self.held_by_peer = True
                self._emit(Held(True, neg.direction))
            elif was_held and not now_held and self.held_by_peer:
                self.held_by_peer = False
                self._emit(Resumed(True))
        return reopened

    def _end(self, code: int, reason: str, by_peer: bool) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        if self.retransmitter is not None:
            self.retransmitter.stop()
            self.ua.layer.schedule(self.retransmitter)
            self.retransmitter = None
        if self.line is not None:
            with contextlib.suppress(Exception):
                self.media_stats = self.line.stats()
        self._close_line(self.line)
        self._close_line(self._reinvite_line)
        self.line = self._reinvite_line = None
        self.ua._forget_call(self)
        self.end_event = Ended(code, reason, by_peer)
        self._emit(self.end_event)
        self.ended.set()
        self.answered.set()  # nobody waits for an answer that cannot come

    def _respond(
        self,
        txn: InviteServer | NonInviteServer | None,
        req: Request,
        status: int,
        reason: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
    ) -> Response:
        return self.ua._respond(
            txn,
            req,
            status,
            reason,
            to_tag=self._local_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def _new_request(
        self, method: str, *, body: bytes = b"", content_type: str | None = None, **kw: object
    ) -> Request:
        assert self.dialog is not None
        contact = self.ua._contact(self.peer.transport) if method in ("INVITE", "REFER") else None
        return self.dialog.new_request(
            method,
            self.ua.host,
            via_port=self.ua.ports.get(self.peer.transport),
            transport=self.peer.transport,
            contact=contact,
            body=body,
            content_type=content_type,
            **kw,  # type: ignore[arg-type]
        )

    # -- UAS ----------------------------------------------------------------------------

    def prepare_incoming(self, txn: InviteServer) -> bool:
        """Negotiate the INVITE's offer and open the line; False when it was rejected."""
        self._txn = txn
        req = self.invite
        try:
            if req.body:
                offer = parse_offer(req.body)
                if self.engine is not None:  # the line's port goes into the answer
                    neg = negotiate_offer(self.policy, offer)
                    self.line = self._open_line(line_config(self.policy, neg))
                host, port = self._media_address(self.line)
                answer, neg = build_answer(self.policy, offer, host, port, session_id=self._sess_id)
                self.negotiated = neg
                self._answer_sdp = self._sdp_bytes(answer)
            else:  # late offer: ours goes into the 200, the answer comes in the ACK
                self.line = self._open_line(line_config(self.policy, first_offer=True))
                host, port = self._media_address(self.line)
                self._our_offer = make_offer(self.policy, host, port, session_id=self._sess_id)
                self._answer_sdp = self._sdp_bytes(self._our_offer)
                self._offer_in_ack = True
        except OfferAnswerError as exc:
            self._close_line(self.line)
            self.line = None
            reason = "Not Acceptable Here" if exc.status == 488 else exc.reason
            self._respond(txn, req, exc.status, reason)
            self.state = CallState.ENDED
            return False
        except MediaCoreError as exc:  # no RTP port left, engine closed
            log.warning("no media line for an incoming call: %s", exc)
            self._close_line(self.line)
            self.line = None
            self._respond(txn, req, 503, "Service Unavailable", headers=(("Retry-After", "5"),))
            self.state = CallState.ENDED
            return False
        return True

    def _start_early(self) -> None:
        neg = self.negotiated
        if self.line is not None and neg is not None and neg.remote_host not in ("0.0.0.0", "::"):
            self.line.start(neg.remote_host, neg.remote_port)
            self.line.set_sending(neg.direction in ("sendrecv", "sendonly"))

    def ring(self, *, early_media: bool = False) -> None:
        """Send 180 Ringing, or 183 Session Progress with the SDP answer (early media)."""
        if self.state not in (CallState.INCOMING, CallState.EARLY) or self._txn is None:
            raise CallError(f"cannot ring in state {self.state}")
        if self._txn.state is not State.PROCEEDING:
            return
        contact = (("Contact", self.ua._contact(self.peer.transport)),)
        if early_media and self.negotiated is not None:
            self._respond(
                self._txn,
                self.invite,
                183,
                "Session Progress",
                headers=contact,
                body=self._answer_sdp,
            )
            self._start_early()
            self._emit(EarlyMedia(183))
        else:
            self._respond(self._txn, self.invite, 180, "Ringing", headers=contact)
            self._emit(Ringing(180))
        self.state = CallState.EARLY
        self.ua._rearm()

    def answer(self) -> None:
        """Send 200 OK with the SDP answer (or our offer) and retransmit it until the ACK."""
        if self.state not in (CallState.INCOMING, CallState.EARLY) or self._txn is None:
            raise CallError(f"cannot answer in state {self.state}")
        txn = self._txn
        if txn.state is not State.PROCEEDING:
            return
        req = self.invite
        self.dialog = Dialog.as_uas(req, self._local_tag)
        record_route = tuple(("Record-Route", v) for v in req.get_all("Record-Route"))
        headers = (
            *record_route,
            ("Contact", self.ua._contact(self.peer.transport)),
            ("Allow", _ALLOW),
        )
        resp = self._respond(txn, req, 200, "OK", headers=headers, body=self._answer_sdp)
        self.state = CallState.CONFIRMED
        self.ua._dialog_established(self)
        self.retransmitter = self.ua._retransmit_2xx(self, txn, resp)
        self._start_early()
        self.answered.set()
        self._emit(Answered())
        self.ua._rearm()

    def reject(
        self,
        status: int = 486,
        reason: str = "Busy Here",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer the INVITE with a final error status (3xx-6xx)."""
        if not 300 <= status <= 699:
            raise ValueError("reject needs a 3xx-6xx status")
        if self._txn is None or self.state not in (CallState.INCOMING, CallState.EARLY):
            raise CallError(f"cannot reject in state {self.state}")
        if self._txn.state is State.PROCEEDING:
            self._respond(self._txn, self.invite, status, reason, headers=headers)
        self._end(status, reason, by_peer=False)
        self.ua._rearm()

    def on_cancel(self) -> None:
        """The peer cancelled our pending INVITE (§9.2): 487 and the end."""
        if self._txn is not None and self._txn.state is State.PROCEEDING:
            self._respond(self._txn, self.invite, 487, "Request Terminated")
        self._end(487, "Request Terminated", by_peer=True)

    def on_ack(self, ack: Request) -> None:
        """ACK for our 2xx: stop retransmitting; a late offer's answer is in it."""
        if self.retransmitter is not None:
            self.ua.stats["2xx_retransmissions"] += self.retransmitter.sent
            self.retransmitter.stop()
            self.ua.layer.schedule(self.retransmitter)
            self.retransmitter = None
        if self._offer_in_ack and self._our_offer is not None:
            self._offer_in_ack = False
            if not ack.body:
                self._our_offer = None
                self.acked.set()
                if self.negotiated is None:  # a re-INVITE's session stays as it was
                    self._end_with_bye(488, "No answer in ACK")
                return
            try:
                neg = read_answer(self.policy, self._our_offer, ack.body)
                if self._apply(neg):
                    self.ua._spawn(self._reinvite_after_reopen())
            except OfferAnswerError as exc:
                self.acked.set()
                self._end_with_bye(exc.status, exc.reason)
                return
            self._our_offer = None
        self.acked.set()

    def on_no_ack(self) -> None:
        """No ACK for 64*T1 (§13.3.1.4): end the session with BYE."""
        self.retransmitter = None
        self.ua.stats["no_ack"] = self.ua.stats.get("no_ack", 0) + 1
        self._end_with_bye(408, "No ACK")

    def _end_with_bye(self, code: int, reason: str) -> None:
        if self.dialog is not None and self.state is CallState.CONFIRMED:
            bye = self._new_request("BYE")
            self.ua._send_in_transaction(bye, self.peer)
        self._end(code, reason, by_peer=False)

    # -- in-dialog requests -------------------------------------------------------------

    def on_request(self, txn: InviteServer | NonInviteServer | None, req: Request) -> None:
        """An in-dialog request (BYE, re-INVITE, INFO, OPTIONS, REFER, NOTIFY, UPDATE)."""
        assert self.dialog is not None
        m = req.method
        try:
            self.dialog.on_request(req)
        except DialogError as exc:
            self.ua._respond(txn, req, exc.status, exc.reason)
            return
        if m == "BYE":
            self.ua._respond(txn, req, 200, "OK")
            self.ua.stats["calls_ended"] += 1
            self._end(200, "BYE", by_peer=True)
        elif m == "INVITE":
            assert isinstance(txn, InviteServer)
            self._on_reinvite(txn, req)
        elif m == "INFO":
            self._on_info(txn, req)
        elif m == "OPTIONS":
            self.ua._respond(txn, req, 200, "OK", headers=(("Allow", _ALLOW),))
        elif m == "REFER":
            self._on_refer(txn, req)
        elif m == "NOTIFY":
            self._on_notify(txn, req)
        elif m == "UPDATE":
            self._on_update(txn, req)
        else:
            self.ua._respond(txn, req, 501, "Not Implemented", headers=(("Allow", _ALLOW),))

    def _answer_in_dialog(self, offer: bytes) -> bytes:
        """Answer an in-dialog offer (re-INVITE or UPDATE): a line that cannot serve the new
        codec is replaced by a new one whose port the answer carries. Raises
        :class:`OfferAnswerError`."""
        new_line: Line | None = None
        try:
            offer_sd = parse_offer(offer)
            neg = negotiate_offer(self.policy, offer_sd, direction=self.direction)
            cfg = line_config(self.policy, neg)
            line = self.line
            if self.engine is not None and (line is None or needs_reopen(line.config, cfg)):
                new_line = self._open_line(cfg)
                line = new_line
            host, port = self._media_address(line)
            answer, neg = build_answer(
                self.policy,
                offer_sd,
                host,
                port,
                session_id=self._sess_id,
                direction=self.direction,
            )
        except OfferAnswerError:
            self._close_line(new_line)
            raise
        body = self._sdp_bytes(answer)
        if new_line is not None:
            self._close_line(self.line)
            self.line = new_line
        self._apply(neg)
        return body

    def _on_reinvite(self, txn: InviteServer, req: Request) -> None:
        if self._reinvite is not None or self.retransmitter is not None:
            # RFC 3261 §14.2: an offer of ours is pending (or our 2xx is unacknowledged)
            self.ua._respond(txn, req, 491, "Request Pending", headers=(("Retry-After", "1"),))
            return
        try:
            if req.body:
                body = self._answer_in_dialog(req.body)
            else:  # offer in our 2xx, answer in the ACK (RFC 3261 §14.2)
                host, port = self._media_address(self.line)
                cfg = (
                    self.line.config
                    if self.line is not None
                    else line_config(self.policy, self.negotiated, first_offer=True)
                )
                self._our_offer = make_line_offer(
                    self.policy, cfg, host, port, session_id=self._sess_id, direction=self.direction
                )
                body = self._sdp_bytes(self._our_offer)
                self._offer_in_ack = True
        except OfferAnswerError as exc:
            reason = "Not Acceptable Here" if exc.status == 488 else exc.reason
            self.ua._respond(txn, req, exc.status, reason)
            return
        headers = (("Contact", self.ua._contact(self.peer.transport)), ("Allow", _ALLOW))
        resp = self._respond(txn, req, 200, "OK", headers=headers, body=body)
        self.retransmitter = self.ua._retransmit_2xx(self, txn, resp)

    def _on_update(self, txn: InviteServer | NonInviteServer | None, req: Request) -> None:
        """UPDATE (RFC 3311): a session refresh, or a new offer answered in the 200."""
        if not req.body:
            self._respond(txn, req, 200, "OK", headers=(("Allow", _ALLOW),))
            return
        if self._reinvite is not None or self._offer_in_ack:
            self.ua._respond(txn, req, 491, "Request Pending", headers=(("Retry-After", "1"),))
            return
        try:
            body = self._answer_in_dialog(req.body)
        except OfferAnswerError as exc:
            reason = "Not Acceptable Here" if exc.status == 488 else exc.reason
            self.ua._respond(txn, req, exc.status, reason)
            return
        contact = (("Contact", self.ua._contact(self.peer.transport)),)
        self._respond(txn, req, 200, "OK", headers=contact, body=body)

    def _on_info(self, txn: InviteServer | NonInviteServer | None, req: Request) -> None:
        if not req.body:
            self.ua._respond(txn, req, 200, "OK")
            return
        try:
            info = parse_info(req.get("Content-Type"), req.body)
        except UnsupportedInfoType as exc:
            self.ua._respond(
                txn,
                req,
                415,
                "Unsupported Media Type",
                headers=(("Accept", "application/dtmf-relay, application/dtmf"),),
            )
            log.debug("INFO refused: %s", exc)
            return
        except DtmfInfoError as exc:
            self.ua._respond(txn, req, 400, f"Bad DTMF: {exc}"[:100])
            return
        self.ua._respond(txn, req, 200, "OK")
        self._emit(Dtmf(info.digit, "info", info.duration_ms))

    def on_media_dtmf(self, digit: str, method: str, duration_ms: int) -> None:
        """A digit the media line detected (RFC 4733 ``rfc4733`` or ``inband``)."""
        self._emit(Dtmf(digit, "rfc2833" if method == "rfc4733" else method, duration_ms))

    def on_rtp_timeout(self) -> None:
        """No RTP for the line's timeout: a stuck call is ended (sip.md §8.1.6)."""
        neg = self.negotiated
        if (
            self.state is CallState.CONFIRMED
            and neg is not None
            and neg.direction
            in (
                "sendrecv",
                "recvonly",
            )
        ):
            self._end_with_bye(408, "RTP timeout")

    # -- REFER (RFC 3515) ---------------------------------------------------------------

    def _on_refer(self, txn: InviteServer | NonInviteServer | None, req: Request) -> None:
        try:
            target = parse_refer_to(req.get("Refer-To"))
        except ReferError as exc:
            self.ua._respond(txn, req, 400, str(exc)[:100])
            return
        self.ua._respond(txn, req, 202, "Accepted")
        self._refer_peer_subscribed = True
        self._notify(100, "Trying")
        self._emit(TransferRequested(str(target.uri), req.get("Referred-By")))

    def _notify(self, status: int, reason: str) -> asyncio.Future[Response]:
        final = status >= 200
        req = self._new_request(
            "NOTIFY",
            body=sipfrag(status, reason),
            content_type=SIPFRAG,
        )
        req.add("Event", "refer")
        req.add("Subscription-State", subscription_state(final))
        if final:
            self._refer_peer_subscribed = False
        self._last_notify = asyncio.ensure_future(self.ua.request(req, self.peer))
        return self._last_notify

    async def transfer_progress(self, status: int, reason: str) -> Response:
        """Report the transfer call's progress to the transferor (NOTIFY with sipfrag, RFC 3515
        §2.4.5); a final status (>= 200) ends the implicit subscription. NOTIFYs go out one
        at a time, in order; returns the NOTIFY's response."""
        if not self._refer_peer_subscribed or self.state is CallState.ENDED:
            raise CallError("no transfer in progress")
        if self._last_notify is not None:
            with contextlib.suppress(Exception):
                await self._last_notify
        return await self._notify(status, reason)

    def _on_notify(self, txn: InviteServer | NonInviteServer | None, req: Request) -> None:
        event = (req.get("Event") or "").partition(";")[0].strip().lower()
        if event != "refer":
            self.ua._respond(txn, req, 489, "Bad Event")
            return
        try:
            frag = parse_sipfrag(req.body)
        except ReferError as exc:
            self.ua._respond(txn, req, 400, str(exc)[:100])
            return
        self.ua._respond(txn, req, 200, "OK")
        self._emit(TransferProgress(frag.status, frag.reason))

    async def refer(self, target: str, *, referred_by: str | None = None) -> Response:
        """Ask the peer to call ``target`` (RFC 3515); returns the REFER's final response.

        Progress arrives as :class:`TransferProgress` events from the peer's NOTIFYs.
        """
        if self.state is not CallState.CONFIRMED:
            raise CallError("REFER needs an established call")
        parse_refer_to(target)
        req = self._new_request("REFER")
        req.add("Refer-To", target if target.startswith("<") else f"<{target}>")
        if referred_by:
            req.add("Referred-By", referred_by)
        return await self.ua.request(req, self.peer)

    # -- UAC ----------------------------------------------------------------------------

    def prepare_outgoing(self) -> bytes:
        """Open the line with our first codec and return the offer for the INVITE body."""
        self.line = self._open_line(line_config(self.policy, first_offer=True))
        host, port = self._media_address(self.line)
        self._our_offer = make_offer(self.policy, host, port, session_id=self._sess_id)
        return self._sdp_bytes(self._our_offer)

    def started(self, txn: InviteClient) -> None:
        """The INVITE went out in ``txn``."""
        self._ctxn = txn

    def on_invite_response(self, txn: InviteClient | None, resp: Response) -> None:
        """A response to our (re-)INVITE, or a stray 2xx retransmission (``txn`` None)."""
        if txn is not None and txn is not self._ctxn:
            self._on_reinvite_response(resp)
            return
        if resp.status < 200:
            self._on_provisional(resp)
        elif resp.status < 300:
            self._on_2xx(resp)
        else:
            self.final = resp
            self._close_line(self.line)
            self.line = None
            self._end(resp.status, resp.reason, by_peer=True)

    def _on_provisional(self, resp: Response) -> None:
        if self.state not in (CallState.CALLING, CallState.EARLY):
            return
        first = not self._provisional
        self._provisional = True  # any provisional, 100 included, allows CANCEL (§9.1)
        if self._cancel_wanted:
            if first:
                self.ua._spawn(self._send_cancel())
            return
        if resp.status == 100:
            return
        self.state = CallState.EARLY
        if resp.body and self._our_offer is not None:
            try:
                neg = read_answer(self.policy, self._our_offer, resp.body)
            except OfferAnswerError as exc:
                log.debug("ignoring early SDP: %s", exc)
            else:
                if (
                    self.engine is None
                    or self.line is None
                    or not needs_reopen(self.line.config, line_config(self.policy, neg))
                ):
                    self._apply(neg)
                    self._emit(EarlyMedia(resp.status))
                    return
        if resp.status in (180, 181, 182):
            self._emit(Ringing(resp.status))

    def _on_2xx(self, resp: Response) -> None:
        if self.dialog is None:
            self.dialog = Dialog.as_uac(self.invite, resp)
            self.ua._dialog_established(self)
        if self.ack is None:
            self.ack = self._new_request("ACK", cseq=self.invite.cseq.number)
        self.ua._send(self.ack, self.peer)  # every 2xx (retransmission) gets the ACK
        if self.state in (CallState.CONFIRMED, CallState.ENDED):
            return
        self.final = resp
        self.state = CallState.CONFIRMED
        if self._cancel_wanted:  # CANCEL lost the race with the 2xx: BYE (§9.1)
            self._end_with_bye(487, "Cancelled")
            return
        reopened = False
        if resp.body and self._our_offer is not None:
            try:
                neg = read_answer(self.policy, self._our_offer, resp.body)
                reopened = self._apply(neg)
            except OfferAnswerError as exc:
                self._end_with_bye(exc.status, exc.reason)
                return
        elif self.negotiated is None:
            self._end_with_bye(488, "No SDP answer")
            return
        self._our_offer = None
        self.answered.set()
        self._emit(Answered())
        if reopened:
            self.ua._spawn(self._reinvite_after_reopen())

    async def _reinvite_after_reopen(self) -> None:
        """The answer needed another codec: announce the reopened line's port."""
        with contextlib.suppress(CallError, OfferAnswerError):
            await self._offer()

    def on_invite_timeout(self) -> None:
        """Timer B: no final response (408)."""
        self._end(408, "Request Timeout", by_peer=False)

    async def _send_cancel(self) -> None:
        await self.ua.cancel(self.invite, self.peer)

    async def cancel(self) -> None:
        """CANCEL our pending INVITE (§9.1); the INVITE then ends with 487 (an :class:`Ended`)."""
        if self.role != "uac" or self.state not in (CallState.CALLING, CallState.EARLY):
            raise CallError(f"cannot cancel in state {self.state}")
        self._cancel_wanted = True
        if self._provisional:
            await self._send_cancel()

    async def wait_answer(self, timeout: float = 60.0) -> bool:
        """Wait until answered or ended; True when answered."""
        async with asyncio.timeout(timeout):
            await self.answered.wait()
        return self.state is CallState.CONFIRMED

    # -- both: BYE, re-INVITE, DTMF ------------------------------------------------------

    async def hangup(self) -> Response | None:
        """End the call: BYE when confirmed (returns its response), CANCEL when calling,
        603 Decline when incoming."""
        if self.state is CallState.ENDED:
            return None
        if self.state is not CallState.CONFIRMED:
            if self.role == "uac":
                await self.cancel()
            else:
                self.reject(603, "Decline")
            return None
        bye = self._new_request("BYE")
        self._end(200, "BYE", by_peer=False)
        return await self.ua.request(bye, self.peer)

    async def _offer(
        self, *, direction: str | None = None, codecs: tuple[str, ...] | None = None
    ) -> Response:
        """Send a re-INVITE with a new offer and apply the answer."""
        if self.state is not CallState.CONFIRMED or self.dialog is None:
            raise CallError("re-INVITE needs an established call")
        if self._reinvite is not None:
            raise CallError("a re-INVITE is already pending")
        want = direction or self.direction
        line = self.line
        new_line: Line | None = None
        cur = self.negotiated
        if codecs is not None and (cur is None or cur.codec != codecs[0]):
            first = dataclasses.replace(self.policy, codecs=codecs)
            cfg = line_config(first, first_offer=True)
            if self.engine is not None:
                new_line = self._open_line(cfg)
                line = new_line
        elif line is not None:
            cfg = line.config
        else:
            cfg = line_config(self.policy, cur, first_offer=cur is None)
        host, port = self._media_address(line)
        offer = make_line_offer(
            self.policy, cfg, host, port, session_id=self._sess_id, direction=want
        )
        req = self._new_request(
            "INVITE", body=self._sdp_bytes(offer), content_type="application/sdp"
        )
        loop = asyncio.get_running_loop()
        self._reinvite = loop.create_future()
        self._reinvite_line = new_line
        try:
            await self.ua._send_invite(self, req)
            resp = await self._reinvite
        except BaseException:
            self._close_line(new_line)
            self._reinvite_line = None
            raise
        finally:
            self._reinvite = None
        if self.ended.is_set():  # the call ended meanwhile; _end closed the new line too
            return resp
        self._reinvite_line = None
        if 200 <= resp.status < 300:
            self.direction = want
            try:
                neg = read_answer(self.policy, offer, resp.body)
            except OfferAnswerError as exc:
                self._close_line(new_line)
                self._end_with_bye(exc.status, exc.reason)
                return resp
            if new_line is not None:
                self._close_line(self.line)
                self.line = new_line
            was = self.negotiated
            self._apply(neg, reopen_ok=False)
            if want != "sendrecv" and (was is None or was.direction == "sendrecv"):
                self._emit(Held(False, neg.direction))
            elif (
                want == "sendrecv"
                and was is not None
                and was.direction != "sendrecv"
                and not self.held_by_peer
            ):
                self._emit(Resumed(False))
        else:
            self._close_line(new_line)
            if resp.status in (408, 481):  # RFC 3261 §14.1: the dialog is gone
                self._end_with_bye(resp.status, resp.reason)
        return resp

    def _on_reinvite_response(self, resp: Response) -> None:
        if resp.status < 200:
            return
        if 200 <= resp.status < 300:
            assert self.dialog is not None
            self.dialog.on_target_refresh_response(resp)
            ack = self._new_request("ACK", cseq=resp.cseq.number)
            self.ua._send(ack, self.peer)
        fut = self._reinvite
        if fut is not None and not fut.done():
            fut.set_result(resp)

    async def hold(self, direction: str = "sendonly") -> Response:
        """Put the peer on hold (re-INVITE with ``sendonly`` or ``inactive``, RFC 3264 §8.4)."""
        if direction not in ("sendonly", "inactive"):
            raise ValueError("hold is sendonly or inactive")
        return await self._offer(direction=direction)

    async def resume(self) -> Response:
        """Take the peer off hold (re-INVITE with ``sendrecv``)."""
        return await self._offer(direction="sendrecv")

    async def change_codecs(self, codecs: tuple[str, ...]) -> Response:
        """Re-INVITE offering ``codecs`` (line names or SDP names) in this order.

        The media line is reopened with the first of them before the offer goes out (its new
        port is in the offer) and the old line closes once the answer arrives.
        """
        names = MediaPolicy(codecs, self.policy.dtmf_methods).sdp_codecs
        return await self._offer(codecs=names)

    async def options(self) -> Response:
        """In-dialog OPTIONS (a liveness probe)."""
        if self.dialog is None or self.state is not CallState.CONFIRMED:
            raise CallError("OPTIONS in dialog needs an established call")
        return await self.ua.request(self._new_request("OPTIONS"), self.peer)

    @property
    def dtmf_method(self) -> str:
        """How :meth:`send_dtmf` sends: ``rfc2833``, ``info`` or ``inband``."""
        return send_method(self.policy, self.negotiated)

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        """Send one digit by the line's DTMF method (RFC 4733 / INFO / in-band)."""
        if self.state not in (CallState.CONFIRMED, CallState.EARLY):
            raise CallError("DTMF needs media")
        method = self.dtmf_method
        if method == "info":
            if self.dialog is None:
                raise CallError("INFO needs a dialog")
            ctype, body = build_info(digit, duration_ms, content_type=self.policy.info_type)
            resp = await self.ua.request(
                self._new_request("INFO", body=body, content_type=ctype), self.peer
            )
            if resp.status >= 300:
                raise CallError(f"INFO refused: {resp.status} {resp.reason}")
            return
        if self.line is None:
            raise CallError("no media line")
        self.line.send_dtmf(digit, duration_ms)

    def pull_pcm(self) -> bytes:
        """One 10 ms frame of received audio (silence without media)."""
        return self.line.pull_pcm() if self.line is not None else b""

    def push_pcm(self, pcm: bytes) -> None:
        """Queue 10 ms frames of audio to send."""
        if self.line is not None:
            self.line.push_pcm(pcm)
