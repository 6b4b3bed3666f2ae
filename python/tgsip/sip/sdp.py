"""SDP (RFC 8866, formerly RFC 4566) and the offer/answer model (RFC 3264) for audio calls.

Sans-I/O. :func:`parse_sdp` / :meth:`SessionDescription.to_bytes` round-trip the lines they
know (v, o, s, c, b, t, a, m) and keep any other line in order. :func:`build_offer` creates
an offer from a line's codec list; :func:`answer_offer` answers a received offer;
:func:`negotiated_from_answer` reads the result on the offering side. Both produce a
:class:`NegotiatedMedia` for the media core.

Answer policy (RFC 3264 §6.1 leaves the choice to the answerer): the first audio stream with
a non-zero port is used; the codec is the first entry of OUR priority list that the offer
contains (our list decides, not the offer's order, so a line's "Audio Codecs" setting is
honoured); the answer carries that single codec plus telephone-event if offered (keeping the
offer's payload type, preferring the clock rate of the chosen codec, else 8000). Every other
m-line is rejected with port 0. No common codec raises :class:`OfferAnswerError` (488).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

__all__ = [
    "CODECS",
    "Codec",
    "Media",
    "NegotiatedMedia",
    "OfferAnswerError",
    "SdpError",
    "SessionDescription",
    "answer_offer",
    "build_offer",
    "negotiated_from_answer",
    "parse_sdp",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly"}


class SdpError(ValueError):
    """Malformed SDP."""


class OfferAnswerError(Exception):
    """Offer/answer failed; ``status`` is the SIP response to send (488 Not Acceptable Here)."""

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Codec(msgspec.Struct, frozen=True):
    """An audio codec as written in ``a=rtpmap`` (RFC 3551 static PTs where they exist)."""

    name: str
    clock_rate: int
    channels: int = 1
    static_pt: int | None = None
    dynamic_pt: int = 0


# Line codec names (product.md §8.2) and SDP encoding names, both accepted.
CODECS: dict[str, Codec] = {
    "pcma": Codec("PCMA", 8000, 1, 8),
    "pcmu": Codec("PCMU", 8000, 1, 0),
    "opus": Codec("opus", 48000, 2, None, 111),
    "g722": Codec("G722", 8000, 1, 9),
}
_ALIASES = {"alaw": "pcma", "mulaw": "pcmu", "ulaw": "pcmu"}
TE_PT = 101
TE_PT_48K = 110


def _codec(name: str) -> Codec:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in CODECS:
        raise ValueError(f"unknown codec {name!r}")
    return CODECS[key]


class NegotiatedMedia(msgspec.Struct, frozen=True):
    """The outcome of offer/answer for the audio stream, as the media core takes it.

    ``codec`` is the SDP encoding name ("PCMA", "PCMU", "opus", "G722"); ``direction`` is
    the negotiated direction from OUR side: ``recvonly`` when the peer holds the call
    (offered ``sendonly`` or ``c=0.0.0.0``), ``sendonly`` when we hold, ``inactive`` when
    neither side sends.
    """

    remote_host: str
    remote_port: int
    codec: str
    payload_type: int
    clock_rate: int
    channels: int
    telephone_event_pt: int | None
    ptime_ms: int
    direction: str


@dataclass
class Media:
    """One m= section (RFC 8866 §5.14) with its c=, b= and a= lines."""

    kind: str
    port: int
    proto: str
    fmts: list[str]
    connection: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None

    def attr(self, name: str) -> str | None:
        """First value of attribute ``name`` (``""`` for a flag), or None."""
        for n, v in self.attributes:
            if n == name:
                return "" if v is None else v
        return None

    def attrs(self, name: str) -> list[str]:
        """All values of attribute ``name``."""
        return [v or "" for n, v in self.attributes if n == name]

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None."""
        for n, v in self.attributes:
            if v is None and n in DIRECTIONS:
                return n
        return None

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """Payload type -> (encoding name, clock rate, channels), static PTs included."""
        out: dict[int, tuple[str, int, int]] = {}
        for fmt in self.fmts:
            if fmt.isdigit():
                pt = int(fmt)
                for c in CODECS.values():
                    if c.static_pt == pt:
                        out[pt] = (c.name, c.clock_rate, c.channels)
        for value in self.attrs("rtpmap"):
            pt_s, _, enc = value.partition(" ")
            parts = enc.strip().split("/")
            if not pt_s.isdigit() or len(parts) < 2 or not parts[1].isdigit():
                raise SdpError(f"Bad rtpmap {value!r}")
            chans = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
            out[int(pt_s)] = (parts[0], int(parts[1]), chans)
        return out


@dataclass
class SessionDescription:
    """A parsed SDP session (RFC 8866 §5)."""

    origin: str = "- 0 0 IN IP4 0.0.0.0"
    session_name: str = "-"
    connection: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    timing: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def direction(self, media: Media) -> str:
        """Effective direction of ``media`` (media level, else session level, else sendrecv)."""
        d = media.direction
        if d is None:
            for n, v in self.attributes:
                if v is None and n in DIRECTIONS:
                    d = n
        return d or "sendrecv"

    def connection_address(self, media: Media) -> str:
        """The address of ``media`` (media-level c= overrides the session's)."""
        c = media.connection or self.connection
        if c is None:
            raise SdpError("No connection address")
        return _address(c)

    def to_bytes(self) -> bytes:
        """Serialize in RFC 8866 §5 order with CRLF line ends."""
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        out += [f"{t}={v}" for t, v in self.other if t in "iuep"]
        if self.connection:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        out += [f"t={t}" for t in self.timing]
        out += [f"{t}={v}" for t, v in self.other if t not in "iuep"]
        out += [f"a={n}" if v is None else f"a={n}:{v}" for n, v in self.attributes]
        for m in self.media:
            port = str(m.port) if m.port_count is None else f"{m.port}/{m.port_count}"
            out.append(f"m={m.kind} {port} {m.proto} {' '.join(m.fmts)}")
            out += [f"{t}={v}" for t, v in m.other if t == "i"]
            if m.connection:
                out.append(f"c={m.connection}")
            out += [f"b={b}" for b in m.bandwidths]
            out += [f"{t}={v}" for t, v in m.other if t != "i"]
            out += [f"a={n}" if v is None else f"a={n}:{v}" for n, v in m.attributes]
        return ("\r\n".join(out) + "\r\n").encode("utf-8")


@functools.lru_cache(maxsize=1024)
def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address, or None for a host name (cached: the same few addresses
    recur in every call's SDP)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _address(connection: str) -> str:
    parts = connection.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"Bad connection line {connection!r}")
    addr = parts[2].split("/")[0]
    ip = ip_or_none(addr)
    if ip is None:
        return addr  # a host name (allowed by RFC 8866 §5.7)
    if (ip.version == 4) != (parts[1] == "IP4"):
        raise SdpError("Address type does not match the address")
    return addr


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body. Raises :class:`SdpError` on malformed input."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8") from None
    lines = [ln.rstrip("\r") for ln in data.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    sd = SessionDescription(timing=[])
    cur: Media | None = None
    seen_o = seen_s = False
    for ln in lines[1:]:
        if len(ln) < 2 or ln[1] != "=" or not ln[0].isalpha():
            raise SdpError(f"Bad SDP line {ln!r}")
        t, v = ln[0], ln[2:]
        if t == "m":
            parts = v.split()
            if len(parts) < 4:
                raise SdpError("Bad m= line")
            port_s, _, count_s = parts[1].partition("/")
            if not port_s.isdigit() or int(port_s) > 65535 or (count_s and not count_s.isdigit()):
                raise SdpError("Bad m= port")
            cur = Media(parts[0], int(port_s), parts[2], parts[3:])
            cur.port_count = int(count_s) if count_s else None
            sd.media.append(cur)
        elif t == "a":
            name, colon, value = v.partition(":")
            (cur.attributes if cur else sd.attributes).append((name, value if colon else None))
        elif t == "c":
            _address(v)
            if cur:
                cur.connection = v
            else:
                sd.connection = v
        elif t == "b":
            (cur.bandwidths if cur else sd.bandwidths).append(v)
        elif cur is not None:
            cur.other.append((t, v))
        elif t == "o":
            if len(v.split()) != 6:
                raise SdpError("Bad o= line")
            sd.origin, seen_o = v, True
        elif t == "s":
            sd.session_name, seen_s = v, True
        elif t == "t":
            sd.timing.append(v)
        else:
            sd.other.append((t, v))
    if not seen_o or not seen_s:
        raise SdpError("Missing o= or s= line")
    if not sd.timing:
        sd.timing = ["0 0"]
    return sd


def _ip_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def build_offer(
    address: str,
    port: int,
    codecs: Sequence[str],
    *,
    session_id: int,
    session_version: int = 0,
    telephone_event: bool = True,
    ptime_ms: int = 20,
    direction: str = "sendrecv",
) -> SessionDescription:
    """An audio offer (RFC 3264 §5) listing ``codecs`` in priority order.

    ``codecs`` are line names (``alaw``, ``mulaw``, ``opus``, ``g722``) or encoding names.
    telephone-event/8000 is added with PT 101 (and telephone-event/48000 with PT 110 when
    Opus is offered), ``a=fmtp:<pt> 0-16``, ``a=ptime`` and the direction attribute.
    """
    if direction not in DIRECTIONS:
        raise ValueError("bad direction")
    if not codecs:
        raise ValueError("no codecs")
    media = Media("audio", port, "RTP/AVP", [])
    for name in codecs:
        c = _codec(name)
        pt = c.static_pt if c.static_pt is not None else c.dynamic_pt
        media.fmts.append(str(pt))
        enc = f"{c.name}/{c.clock_rate}" + (f"/{c.channels}" if c.channels > 1 else "")
        media.attributes.append(("rtpmap", f"{pt} {enc}"))
        if c.name == "opus":
            media.attributes.append(("fmtp", f"{pt} useinbandfec=1"))
    if telephone_event:
        tes = [(TE_PT, 8000)]
        if any(_codec(n).name == "opus" for n in codecs):
            tes.append((TE_PT_48K, 48000))
        for pt, rate in tes:
            media.fmts.append(str(pt))
            media.attributes.append(("rtpmap", f"{pt} telephone-event/{rate}"))
            media.attributes.append(("fmtp", f"{pt} 0-16"))
    media.attributes.append(("ptime", str(ptime_ms)))
    media.attributes.append((direction, None))
    iptype = _ip_type(address)
    return SessionDescription(
        origin=f"- {session_id} {session_version} IN {iptype} {address}",
        session_name="-",
        connection=f"IN {iptype} {address}",
        media=[media],
    )


def _ptime(media: Media, default: int) -> int:
    p = media.attr("ptime")
    return int(p) if p and p.isdigit() and 0 < int(p) <= 200 else default


def _te_pt(rtpmap: dict[int, tuple[str, int, int]], clock: int) -> int | None:
    tes = {pt: rate for pt, (enc, rate, _) in rtpmap.items() if enc.lower() == "telephone-event"}
    for want in (clock, 8000):
        for pt, rate in tes.items():
            if rate == want:
                return pt
    return None


def answer_offer(
    offer: SessionDescription,
    address: str,
    port: int,
    codecs: Sequence[str],
    *,
    session_id: int,
    session_version: int = 0,
    ptime_ms: int = 20,
    direction: str = "sendrecv",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6) with the policy in the module docstring.

    ``direction`` is what we want; the answer's direction is its intersection with the
    reverse of the offer's (offer sendonly -> recvonly, inactive -> inactive; RFC 3264 §6.1).
    Raises :class:`OfferAnswerError`: 488 when no audio stream or codec is acceptable, 400
    when the offer is malformed (bad rtpmap, no connection address).
    """
    chosen: tuple[int, Media] | None = None
    for i, m in enumerate(offer.media):
        if m.kind == "audio" and m.port != 0 and m.proto.startswith("RTP/"):
            chosen = (i, m)
            break
    if chosen is None:
        raise OfferAnswerError("No audio stream offered")
    idx, om = chosen
    try:
        rtpmap = om.rtpmap()
    except SdpError as exc:
        raise OfferAnswerError(str(exc), 400) from None
    pick: tuple[int, Codec] | None = None
    for name in codecs:
        c = _codec(name)
        for fmt in om.fmts:
            if not fmt.isdigit() or int(fmt) not in rtpmap:
                continue
            enc, rate, _ = rtpmap[int(fmt)]
            if enc.lower() == c.name.lower() and rate == c.clock_rate:
                pick = (int(fmt), c)
                break
        if pick:
            break
    if pick is None:
        raise OfferAnswerError("No common codec")
    pt, codec = pick
    te = _te_pt(rtpmap, codec.clock_rate)
    try:
        remote_host = offer.connection_address(om)
    except SdpError as exc:
        raise OfferAnswerError(str(exc), 400) from None
    offered_dir = offer.direction(om)
    if remote_host in ("0.0.0.0", "::"):
        offered_dir = "sendonly" if offered_dir == "sendrecv" else offered_dir
    ours = _combine(direction, _REVERSE.get(offered_dir, "inactive"))
    ptime = _ptime(om, ptime_ms)

    am = Media("audio", port, om.proto, [str(pt)])
    enc = f"{codec.name}/{codec.clock_rate}" + (f"/{codec.channels}" if codec.channels > 1 else "")
    am.attributes.append(("rtpmap", f"{pt} {enc}"))
    if te is not None:
        am.fmts.append(str(te))
        am.attributes.append(("rtpmap", f"{te} telephone-event/{rtpmap[te][1]}"))
        am.attributes.append(("fmtp", f"{te} 0-16"))
    am.attributes.append(("ptime", str(ptime)))
    am.attributes.append((ours, None))
    iptype = _ip_type(address)
    answer = SessionDescription(
        origin=f"- {session_id} {session_version} IN {iptype} {address}",
        connection=f"IN {iptype} {address}",
    )
    for i, m in enumerate(offer.media):
        if i == idx:
            answer.media.append(am)
        else:  # RFC 3264 §6: same number of m-lines; rejected streams get port 0
            answer.media.append(Media(m.kind, 0, m.proto, m.fmts[:1]))
    neg = NegotiatedMedia(
        remote_host,
        om.port,
        codec.name,
        pt,
        codec.clock_rate,
        codec.channels,
        te,
        ptime,
        ours,
    )
    return answer, neg


def _combine(ours: str, allowed: str) -> str:
    send = ours in ("sendrecv", "sendonly") and allowed in ("sendrecv", "sendonly")
    recv = ours in ("sendrecv", "recvonly") and allowed in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (send, recv), "inactive"
    )


def negotiated_from_answer(
    offer: SessionDescription, answer: SessionDescription, *, ptime_ms: int = 20
) -> NegotiatedMedia:
    """Read the result of OUR offer from the peer's answer (RFC 3264 §7).

    The codec is the first payload type of the answer's audio stream that we offered.
    Raises :class:`OfferAnswerError` when the audio stream was rejected or has no codec of ours
    (status 400 when the answer is malformed).
    """
    om = next((m for m in offer.media if m.kind == "audio"), None)
    if om is None:
        raise OfferAnswerError("Our offer has no audio stream")
    idx = offer.media.index(om)
    if idx >= len(answer.media):
        raise OfferAnswerError("Answer lacks the audio stream")
    am = answer.media[idx]
    if am.port == 0:
        raise OfferAnswerError("Audio stream rejected")
    try:
        ours = om.rtpmap()
        theirs = am.rtpmap()
        host = answer.connection_address(am)
    except SdpError as exc:
        raise OfferAnswerError(str(exc), 400) from None
    for fmt in am.fmts:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        enc = theirs.get(pt) or ours.get(pt)
        if enc is None or enc[0].lower() == "telephone-event":
            continue
        if not any(e[0].lower() == enc[0].lower() and e[1] == enc[1] for e in ours.values()):
            continue
        te = _te_pt(theirs, enc[1])
        answered = answer.direction(am)
        if host in ("0.0.0.0", "::") and answered == "sendrecv":
            answered = "sendonly"
        mine = _combine(offer.direction(om), _REVERSE.get(answered, "inactive"))
        name = next((c.name for c in CODECS.values() if c.name.lower() == enc[0].lower()), enc[0])
        return NegotiatedMedia(
            host, am.port, name, pt, enc[1], enc[2], te, _ptime(am, ptime_ms), mine
        )
    raise OfferAnswerError("Answer has no codec we offered")
