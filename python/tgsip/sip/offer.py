"""SDP offer/answer for one call leg (RFC 3264), tied to a line's codec and DTMF settings.

Sans-I/O. This module turns a SIP line's ``codecs`` (priority order, product.md §8.2) and
``dtmf_methods`` into offers and answers, and turns the negotiated result into the media core's
:class:`~tgsip.media.config.LineConfig`.

* Offer (RFC 3264 §5): the line's codecs in priority order: ``opus/48000/2`` (dynamic PT 111),
  PCMA (static 8), PCMU (static 0); telephone-event (RFC 4733) is offered only when ``rfc2833``
  is among the line's DTMF methods: PT 101 at 8000 Hz, plus PT 110 at 48000 Hz when Opus is
  offered; ``a=ptime`` and one direction attribute (``sendrecv``; ``sendonly``/``inactive`` put
  the peer on hold, RFC 3264 §8.4). Address and port are the media-core line's
  ``local_address``.
* Answer (RFC 3264 §6): **our order decides**: the codec is the first codec of the line's list
  that the offer contains (so the administrator's "Audio Codecs" priority is honoured even when
  the PBX lists another codec first). No common codec, or no usable audio stream: 488 (raised
  as :class:`~tgsip.sip.sdp.OfferAnswerError`). A malformed offer: 400.
  telephone-event is kept in the answer only when ``rfc2833`` is among our methods.
* Reading an answer to our offer (RFC 3264 §7): the first payload type of the answer that we
  offered.

Answering is done in two steps because the media line must exist (with the negotiated codec)
before its port can be written into the answer: :func:`negotiate_offer` picks the codec,
then :func:`build_answer` writes the answer with the opened line's address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

from tgsip.config.lines import SipLine
from tgsip.media.config import Codec as MediaCodec
from tgsip.media.config import DtmfMethod as MediaDtmf
from tgsip.media.config import LineConfig, OpusSettings, PcmRate, Ptime
from tgsip.sip.sdp import (
    DIRECTIONS,
    TE_PT,
    TE_PT_48K,
    Media,
    NegotiatedMedia,
    OfferAnswerError,
    SdpError,
    SessionDescription,
    answer_offer,
    build_offer,
    ip_or_none,
    negotiated_from_answer,
    parse_sdp,
)

__all__ = [
    "MediaPolicy",
    "OfferAnswerError",
    "build_answer",
    "line_config",
    "make_line_offer",
    "make_offer",
    "negotiate_offer",
    "parse_offer",
    "read_answer",
    "send_method",
]

#: SIP line codec names (tgsip.config.lines.Codec values) -> SDP encoding names.
_LINE_CODECS = {"alaw": "PCMA", "pcma": "PCMA", "mulaw": "PCMU", "pcmu": "PCMU", "opus": "opus"}
_PTIMES = (10, 20, 30, 40, 60)

_DEFAULT_OPUS = OpusSettings()
SendMethod = Literal["rfc2833", "info", "inband"]
_MEDIA_DTMF: dict[str, MediaDtmf] = {"rfc2833": "rfc4733", "inband": "inband", "info": "none"}


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """What a line allows: codecs in priority order, DTMF methods in priority order.

    ``codecs`` holds line codec names (``alaw``, ``mulaw``, ``opus``; the values of
    ``tgsip.config.lines.Codec``) or SDP names (``PCMA``, ``PCMU``); ``dtmf_methods`` holds
    ``rfc2833``, ``info``, ``inband`` (``tgsip.config.lines.DtmfMethod`` values).
    ``pcm_rate`` is the rate of the PCM the media line exchanges with its peer; ``opus`` the
    encoder settings of Opus lines (complexity is a per-line knob, media.md §4);
    ``info_type`` the body format of digits we send by SIP INFO (``application/dtmf-relay`` or
    ``application/dtmf``, media.md §7.4).
    """

    codecs: tuple[str, ...] = ("alaw", "mulaw")
    dtmf_methods: tuple[str, ...] = ("rfc2833",)
    ptime_ms: int = 20
    pcm_rate: int = 8000
    rtp_timeout_ms: int = 30000
    opus: OpusSettings = _DEFAULT_OPUS
    info_type: str = "application/dtmf-relay"

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("a line needs at least one codec")
        for c in self.codecs:
            if str(c).lower() not in _LINE_CODECS:
                raise ValueError(f"unknown codec {c!r}")
        for m in self.dtmf_methods:
            if str(m) not in ("rfc2833", "info", "inband"):
                raise ValueError(f"unknown DTMF method {m!r}")
        if self.ptime_ms not in _PTIMES:
            raise ValueError(f"ptime must be one of {_PTIMES}")
        if self.info_type not in ("application/dtmf-relay", "application/dtmf"):
            raise ValueError(f"unknown INFO DTMF type {self.info_type!r}")
        if self.pcm_rate not in (8000, 16000, 48000):
            raise ValueError("pcm_rate must be 8000, 16000 or 48000")

    @classmethod
    def of(cls, codecs: Iterable[object], dtmf_methods: Iterable[object], **kw: Any) -> MediaPolicy:
        """From a SIP line's ``codecs`` and ``dtmf_methods`` (enums or strings)."""
        return cls(tuple(str(c) for c in codecs), tuple(str(m) for m in dtmf_methods), **kw)

    @classmethod
    def from_line(cls, line: SipLine, **kw: Any) -> MediaPolicy:
        """The policy of a configured SIP line (its Audio Codecs and DTMF settings)."""
        return cls.of(line.codecs, line.dtmf_methods, **kw)

    @property
    def sdp_codecs(self) -> tuple[str, ...]:
        """The codecs as SDP encoding names, duplicates removed, order kept."""
        out: list[str] = []
        for c in self.codecs:
            name = _LINE_CODECS[str(c).lower()]
            if name not in out:
                out.append(name)
        return tuple(out)

    @property
    def rfc2833(self) -> bool:
        """Whether telephone-event is offered/accepted."""
        return "rfc2833" in self.dtmf_methods


def _host(address: str) -> str:
    """An address fit for ``c=``: the unspecified address is not one (RFC 8866 §5.7)."""
    ip = ip_or_none(address)
    if ip is None:
        return address
    if ip.is_unspecified:
        raise ValueError("the media address must be a concrete address, not 0.0.0.0 or ::")
    return address


def make_offer(
    policy: MediaPolicy,
    address: str,
    port: int,
    *,
    session_id: int,
    session_version: int = 0,
    direction: str = "sendrecv",
    codecs: tuple[str, ...] | None = None,
) -> SessionDescription:
    """An offer from ``policy`` (see the module docstring) for the line at ``address:port``.

    ``direction`` is one of sendrecv/sendonly/recvonly/inactive (hold uses sendonly or
    inactive, RFC 3264 §8.4); ``codecs`` narrows the offered codecs (a codec change offers
    the new codec first).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    names = codecs if codecs is not None else policy.sdp_codecs
    return build_offer(
        _host(address),
        port,
        names,
        session_id=session_id,
        session_version=session_version,
        telephone_event=policy.rfc2833,
        ptime_ms=policy.ptime_ms,
        direction=direction,
    )


def make_line_offer(
    policy: MediaPolicy,
    cfg: LineConfig,
    address: str,
    port: int,
    *,
    session_id: int,
    session_version: int = 0,
    direction: str = "sendrecv",
) -> SessionDescription:
    """An offer naming exactly what the open line ``cfg`` speaks (codec PT and telephone-event
    PT), for re-INVITEs: the answer then cannot pick anything the line does not decode."""
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    enc = {"PCMA": "PCMA/8000", "PCMU": "PCMU/8000", "opus": "opus/48000/2"}[cfg.codec]
    m = Media("audio", port, "RTP/AVP", [str(cfg.payload_type)])
    m.attributes.append(("rtpmap", f"{cfg.payload_type} {enc}"))
    if cfg.codec == "opus":
        m.attributes.append(("fmtp", f"{cfg.payload_type} useinbandfec=1"))
    te = cfg.telephone_event_pt
    if te is not None and policy.rfc2833:
        rate = 48000 if cfg.codec == "opus" and te == TE_PT_48K else 8000
        m.fmts.append(str(te))
        m.attributes.append(("rtpmap", f"{te} telephone-event/{rate}"))
        m.attributes.append(("fmtp", f"{te} 0-16"))
    m.attributes.append(("ptime", str(cfg.ptime_ms)))
    m.attributes.append((direction, None))
    host = _host(address)
    iptype = "IP6" if ":" in host else "IP4"
    return SessionDescription(
        origin=f"- {session_id} {session_version} IN {iptype} {host}",
        connection=f"IN {iptype} {host}",
        media=[m],
    )


def _strip_telephone_event(answer: SessionDescription, neg: NegotiatedMedia) -> NegotiatedMedia:
    te = neg.telephone_event_pt
    if te is None:
        return neg
    for m in answer.media:
        if m.port and str(te) in m.fmts:
            m.fmts.remove(str(te))
            m.attributes = [
                (n, v)
                for n, v in m.attributes
                if not (n in ("rtpmap", "fmtp") and v is not None and v.split(" ", 1)[0] == str(te))
            ]
    return NegotiatedMedia(
        neg.remote_host,
        neg.remote_port,
        neg.codec,
        neg.payload_type,
        neg.clock_rate,
        neg.channels,
        None,
        neg.ptime_ms,
        neg.direction,
    )


def parse_offer(offer: SessionDescription | bytes) -> SessionDescription:
    """The offer parsed once (a UAS negotiates, opens the line, then answers the same
    offer). Raises :class:`OfferAnswerError` (400) for malformed SDP."""
    return _parse(offer)


def _parse(offer: SessionDescription | bytes) -> SessionDescription:
    if isinstance(offer, SessionDescription):
        return offer
    try:
        return parse_sdp(offer)
    except SdpError as exc:
        raise OfferAnswerError(f"Bad SDP: {exc}", 400) from None


def negotiate_offer(
    policy: MediaPolicy, offer: SessionDescription | bytes, *, direction: str = "sendrecv"
) -> NegotiatedMedia:
    """The outcome of answering ``offer`` (codec, PTs, remote address, direction).

    Raises :class:`OfferAnswerError` (488 no common codec / no audio, 400 malformed).
    """
    sd = _parse(offer)
    _, neg = _answer(policy, sd, "127.0.0.1", 9, 0, 0, direction)
    return neg


def _answer(
    policy: MediaPolicy,
    offer: SessionDescription,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    direction: str,
) -> tuple[SessionDescription, NegotiatedMedia]:
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    try:
        answer, neg = answer_offer(
            offer,
            _host(address),
            port,
            policy.sdp_codecs,
            session_id=session_id,
            session_version=session_version,
            ptime_ms=policy.ptime_ms,
            direction=direction,
        )
    except (SdpError, ValueError) as exc:
        raise OfferAnswerError(f"Bad SDP: {exc}", 400) from None
    if not policy.rfc2833:
        neg = _strip_telephone_event(answer, neg)
    if neg.remote_port == 0 or neg.remote_port > 65535:
        raise OfferAnswerError("Bad media port", 400)
    return answer, neg


def build_answer(
    policy: MediaPolicy,
    offer: SessionDescription | bytes,
    address: str,
    port: int,
    *,
    session_id: int,
    session_version: int = 0,
    direction: str = "sendrecv",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """The answer to ``offer`` for the line at ``address:port`` and its outcome.

    Gives the same outcome as :func:`negotiate_offer` for the same arguments.
    """
    return _answer(policy, _parse(offer), address, port, session_id, session_version, direction)


def read_answer(
    policy: MediaPolicy, offer: SessionDescription, answer: SessionDescription | bytes
) -> NegotiatedMedia:
    """The outcome of OUR ``offer`` from the peer's ``answer`` (RFC 3264 §7).

    Raises :class:`OfferAnswerError` when the audio stream was rejected or the answer picked
    no codec we offered (the call must then end, RFC 3264 §7 leaves no other choice).
    """
    neg = negotiated_from_answer(offer, _parse(answer), ptime_ms=policy.ptime_ms)
    if not policy.rfc2833 and neg.telephone_event_pt is not None:
        neg = NegotiatedMedia(
            neg.remote_host,
            neg.remote_port,
            neg.codec,
            neg.payload_type,
            neg.clock_rate,
            neg.channels,
            None,
            neg.ptime_ms,
            neg.direction,
        )
    return neg


def send_method(policy: MediaPolicy, neg: NegotiatedMedia | None) -> SendMethod:
    """How we send digits: the line's first DTMF method usable with this negotiation.

    ``rfc2833`` needs a negotiated telephone-event (``neg`` None = before the answer, when
    our offer's telephone-event is assumed); with no method usable, in-band tones.
    """
    for m in policy.dtmf_methods:
        if m == "rfc2833" and neg is not None and neg.telephone_event_pt is None:
            continue
        return cast(SendMethod, m)
    return "inband"


def line_config(
    policy: MediaPolicy, neg: NegotiatedMedia | None = None, *, first_offer: bool = False
) -> LineConfig:
    """The media core's settings for ``neg`` (or, before any answer, for our first codec).

    ``first_offer`` builds the line for our own offer: our first codec with the PTs our offer
    uses, so RTP arriving early (before the answer) already decodes.
    """
    if neg is None:
        name = policy.sdp_codecs[0]
        pt = {"PCMA": 8, "PCMU": 0, "opus": 111}[name]
        # telephone-event/8000 (PT 101) is what answerers pick in practice, also next to Opus
        te: int | None = TE_PT if policy.rfc2833 else None
        ptime = policy.ptime_ms
    else:
        name, pt, te, ptime = neg.codec, neg.payload_type, neg.telephone_event_pt, neg.ptime_ms
    if name not in ("PCMA", "PCMU", "opus"):
        raise OfferAnswerError(f"codec {name} is not supported by the media core")
    method = send_method(policy, None if first_offer else neg)
    media_dtmf: MediaDtmf = _MEDIA_DTMF[method]
    if media_dtmf == "rfc4733" and te is None:
        media_dtmf = "inband"
    if ptime not in _PTIMES:
        ptime = 20
    return LineConfig(
        codec=cast(MediaCodec, name),
        payload_type=pt,
        telephone_event_pt=te,
        ptime_ms=cast(Ptime, ptime),
        dtmf_method=media_dtmf,
        detect_inband_dtmf="inband" in policy.dtmf_methods,
        rtp_timeout_ms=policy.rtp_timeout_ms,
        pcm_rate=cast(PcmRate, policy.pcm_rate),
        opus=policy.opus,
    )


def first_audio(sd: SessionDescription) -> Media | None:
    """The first audio stream of ``sd`` with a non-zero port, or None."""
    return next((m for m in sd.media if m.kind == "audio" and m.port != 0), None)
