"""Benchmark: the registrar's share of one digest registration (sans-I/O, no sockets).

One round = the unauthenticated REGISTER answered with a challenge, then the answered
REGISTER verified and bound (MD5, qop=auth), as a PBX does on every refresh. Messages are
parsed from bytes as the transport delivers them; the client's digest work is outside the
timed part.
"""

from __future__ import annotations

import itertools
from typing import Any

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.auth import DigestClient
from tgsip.sip.message import Request, new_request, parse_message
from tgsip.sip.registrar import Registrar
from tgsip.sip.transaction import Peer

PBX = Peer("UDP", "192.0.2.10", 5060)
PASSWORD = "bench-password-0123456789"


def _register(cseq: int, auth: str | None) -> bytes:
    extra = [("Expires", "300")] + ([("Authorization", auth)] if auth else [])
    return new_request(
        "REGISTER",
        "sip:gw.example",
        "<sip:benchpbx01@gw.example>",
        "<sip:benchpbx01@gw.example>",
        "bench-reg",
        cseq,
        "192.0.2.10",
        contact="<sip:pbx@192.0.2.10:5060>",
        extra_headers=extra,
    ).to_bytes()


def test_registrar_challenge_and_register(benchmark: Any) -> None:
    reg = Registrar(b"b" * 32, "tgsip", algorithms=("MD5", "SHA-256"))
    reg.set_line(
        SipLine(
            id=1,
            session_id=1,
            kind=LineKind.PBX_TO_GATEWAY,
            login="benchpbx01",
            password=PASSWORD,
        )
    )
    client = DigestClient("benchpbx01", PASSWORD)
    cseqs = itertools.count(1, 2)
    clock = itertools.count(0)

    def prepare() -> tuple[tuple[bytes, bytes], dict[str, Any]]:
        cseq = next(cseqs)
        first = _register(cseq, None)
        now = float(next(clock))
        challenge = reg.register(parse_first(first), PBX, now)
        auth = client.authorize(
            [v for n, v in challenge.headers if n == "WWW-Authenticate"],
            "REGISTER",
            "sip:gw.example",
        )
        return (first, _register(cseq + 1, auth)), {}

    def round_trip(first: bytes, second: bytes) -> int:
        now = float(next(clock))
        a = parse_message(first)
        b = parse_message(second)
        assert isinstance(a, Request)
        assert isinstance(b, Request)
        challenged = reg.register(a, PBX, now).status
        return challenged * 1000 + reg.register(b, PBX, now).status

    result = benchmark.pedantic(round_trip, setup=prepare, rounds=2000, iterations=1)
    assert result == 401200


def parse_first(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg
