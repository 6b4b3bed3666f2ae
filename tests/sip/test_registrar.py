"""Registrar for PBX → gateway lines, sans-I/O with a fake clock."""

from __future__ import annotations

import pytest

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.auth import DigestClient, parse_challenge
from tgsip.sip.message import Request, new_request, parse_message
from tgsip.sip.registrar import Registrar
from tgsip.sip.transaction import Peer

SECRET = b"0123456789abcdef0123456789abcdef"
PBX = Peer("UDP", "192.0.2.10", 5080)
LOGIN = "pbx1login0"
PASSWORD = "correct-horse-battery-staple"


def line(**kw: object) -> SipLine:
    base: dict[str, object] = {
        "id": 7,
        "session_id": 1,
        "kind": LineKind.PBX_TO_GATEWAY,
        "login": LOGIN,
        "password": PASSWORD,
    }
    base.update(kw)
    return SipLine(**base)  # type: ignore[arg-type]


def register(
    *,
    user: str = LOGIN,
    contact: str | None = "<sip:pbx@192.0.2.10:5080>",
    expires: int | None = None,
    cseq: int = 1,
    call_id: str = "reg-1@pbx",
    auth: str | None = None,
) -> Request:
    extra: list[tuple[str, str]] = []
    if expires is not None:
        extra.append(("Expires", str(expires)))
    if auth is not None:
        extra.append(("Authorization", auth))
    if contact is not None and (contact == "*" or ", <" in contact):  # raw header value
        extra.append(("Contact", contact))
        contact = None
    req = new_request(
        "REGISTER",
        "sip:gw.example",
        f"<sip:{user}@gw.example>",
        f"<sip:{user}@gw.example>",
        call_id,
        cseq,
        "192.0.2.10",
        via_port=5080,
        contact=contact,
        extra_headers=extra,
    )
    # through bytes, as the transport delivers it
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    return msg


class Pbx:
    """Answers challenges like a PBX would (one DigestClient per registration)."""

    def __init__(self, reg: Registrar, password: str = PASSWORD, user: str = LOGIN) -> None:
        self.reg = reg
        self.client = DigestClient(user, password)
        self.user = user
        self.cseq = 0

    def send(self, now: float, source: Peer = PBX, **kw: object):  # type: ignore[no-untyped-def]
        self.cseq += 1
        res = self.reg.register(register(user=self.user, cseq=self.cseq, **kw), source, now)  # type: ignore[arg-type]
        if res.status != 401:
            return res
        chal = [v for n, v in res.headers if n == "WWW-Authenticate"]
        auth = self.client.authorize(chal, "REGISTER", "sip:gw.example")
        self.cseq += 1
        return self.reg.register(
            register(user=self.user, cseq=self.cseq, auth=auth, **kw),  # type: ignore[arg-type]
            source,
            now,
        )


def test_every_register_is_challenged_alike_sha256_first() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line())
    a = reg.register(register(), PBX, 0.0)
    b = reg.register(register(user="nosuchuser"), PBX, 0.0)
    assert (a.status, b.status) == (401, 401)
    assert not a.failure
    assert not b.failure
    algs = [parse_challenge(v).algorithm for n, v in a.headers if n == "WWW-Authenticate"]
    assert algs == ["SHA-256", "MD5"]


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_register_binds_and_reports_state(algorithm: str) -> None:
    reg = Registrar(SECRET, "tgsip", algorithms=(algorithm,))
    reg.set_line(line())
    res = Pbx(reg).send(100.0, expires=300)
    assert res.status == 200
    assert res.line_id == 7
    assert res.changed == 7
    assert res.headers == (("Contact", "<sip:pbx@192.0.2.10:5080>;expires=300"),)
    b = reg.binding(7, 100.0)
    assert b is not None
    assert (b.contact, b.source, b.expires_at) == ("sip:pbx@192.0.2.10:5080", PBX, 400.0)
    assert reg.is_registered(7, 399.0)
    assert not reg.is_registered(7, 400.0)
    assert reg.expire(400.0) == []  # already purged by the query above
    assert reg.binding(7, 400.0) is None


def test_wrong_password_gets_403_and_a_failure() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line())
    res = Pbx(reg, password="wrong").send(0.0)
    assert res.status == 403
    assert res.failure.startswith("auth failed")
    res = Pbx(reg, user="nosuchuser").send(0.0)
    assert res.status == 403
    assert res.failure
    assert reg.binding(7, 0.0) is None


def test_untrusted_source_is_refused_even_with_the_right_password() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line(trusted_ips=("192.0.2.0/28",)))
    assert reg.serves("192.0.2.10")
    assert not reg.serves("198.51.100.1")
    res = Pbx(reg).send(0.0, source=Peer("UDP", "198.51.100.1", 5060))
    assert res.status == 403
    assert res.failure == "untrusted source"
    assert Pbx(reg).send(0.0).status == 200


def test_min_expires_remove_star_and_cap() -> None:
    reg = Registrar(SECRET, "tgsip", min_expires=60, max_expires=600)
    reg.set_line(line())
    pbx = Pbx(reg)
    res = pbx.send(0.0, expires=10)
    assert res.status == 423
    assert ("Min-Expires", "60") in res.headers
    res = pbx.send(0.0, expires=100_000)
    assert res.status == 200
    assert res.headers[0][1].endswith("expires=600")
    pbx.send(0.0, contact="<sip:second@192.0.2.10:5080>;expires=120")
    assert len(reg.bindings(7, 0.0)) == 2
    res = pbx.send(1.0, contact="<sip:second@192.0.2.10:5080>", expires=0)
    assert res.status == 200
    assert len(reg.bindings(7, 1.0)) == 1
    res = pbx.send(2.0, contact="*", expires=5)
    assert res.status == 400
    res = pbx.send(2.0, contact="*", expires=0)
    assert res.status == 200
    assert reg.bindings(7, 2.0) == []
    assert res.changed == 7


def test_stale_nonce_is_rechallenged_and_replay_fails() -> None:
    reg = Registrar(SECRET, "tgsip", nonce_ttl=30)
    reg.set_line(line())
    ch = reg.register(register(), PBX, 0.0)
    client = DigestClient(LOGIN, PASSWORD)
    auth = client.authorize(
        [v for n, v in ch.headers if n == "WWW-Authenticate"], "REGISTER", "sip:gw.example"
    )
    late = reg.register(register(cseq=2, auth=auth), PBX, 100.0)
    assert late.status == 401
    assert "stale=true" in late.headers[0][1]
    ok = reg.register(register(cseq=3, auth=auth), PBX, 1.0)
    assert ok.status == 200
    replay = reg.register(register(cseq=4, auth=auth), PBX, 2.0)
    assert replay.status == 403
    assert "replay" in replay.failure


def test_password_change_drops_bindings_and_query_lists_them() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line())
    Pbx(reg).send(0.0)
    res = Pbx(reg).send(1.0, contact=None)  # query: no Contact
    assert res.status == 200
    assert len(res.headers) == 1
    assert not reg.set_line(line(number_on_pbx="100"))  # other fields: bindings kept
    assert reg.is_registered(7, 2.0)
    assert reg.set_line(line(password="new-password-0123456789"))
    assert not reg.is_registered(7, 2.0)
    assert Pbx(reg).send(3.0).status == 403
    assert Pbx(reg, password="new-password-0123456789").send(3.0).status == 200
    assert reg.remove_line(7)
    assert reg.register(register(), PBX, 4.0).status == 401


def test_out_of_order_cseq_and_foreign_aor() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line())
    reg.set_line(line(id=8, login="otherline1", password="p" * 24))
    pbx = Pbx(reg)
    assert pbx.send(0.0).status == 200
    pbx.cseq = 0  # same Call-ID, lower CSeq
    assert pbx.send(1.0).status == 500
    # authenticated as line 7 but registering line 8's AOR
    client = DigestClient(LOGIN, PASSWORD)
    ch = reg.register(register(user="otherline1", call_id="x"), PBX, 0.0)
    auth = client.authorize(
        [v for n, v in ch.headers if n == "WWW-Authenticate"], "REGISTER", "sip:gw.example"
    )
    res = reg.register(register(user="otherline1", call_id="x", cseq=2, auth=auth), PBX, 0.0)
    assert res.status == 403
    assert res.failure == "foreign AOR"


def test_invite_authentication_from_bound_source() -> None:
    reg = Registrar(SECRET, "tgsip")
    reg.set_line(line(trusted_ips=("192.0.2.10/32",)))
    Pbx(reg).send(0.0)
    inv = parse_message(
        new_request(
            "INVITE", "sip:123@gw.example", "<sip:pbx@x>", "<sip:123@gw.example>", "c", 1, "h"
        ).to_bytes()
    )
    assert isinstance(inv, Request)
    chk = reg.authenticate(inv, PBX, 1.0)
    assert chk.status == 401
    assert chk.line_id is None
    auth = DigestClient(LOGIN, PASSWORD).authorize(
        [v for _, v in chk.headers], "INVITE", "sip:123@gw.example"
    )
    inv.add("Authorization", auth)
    assert reg.authenticate(inv, PBX, 1.0).line_id == 7
    assert reg.authenticate(inv, Peer("UDP", "203.0.113.9", 5060), 1.0).status == 403


def test_register_is_all_or_nothing() -> None:
    reg = Registrar(SECRET, "tgsip", min_expires=60)
    reg.set_line(line())
    pbx = Pbx(reg)
    assert pbx.send(0.0, contact="<sip:a@192.0.2.10>;expires=120").status == 200
    # removes a and adds b with a too brief interval: 423, and a is still bound
    res = pbx.send(1.0, contact="<sip:a@192.0.2.10>;expires=0, <sip:b@192.0.2.10>;expires=5")
    assert res.status == 423
    assert [b.contact for b in reg.bindings(7, 1.0)] == ["sip:a@192.0.2.10"]
