"""Dialogs (RFC 3261 §12): IDs, route sets, CSeq rules, target refresh."""

from __future__ import annotations

import pytest

from tgsip.sip.dialog import Dialog, DialogError
from tgsip.sip.message import Request, Response, make_response, parse_message

INVITE = (
    b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKd1\r\n"
    b"Record-Route: <sip:p1.example;lr>\r\n"
    b"Record-Route: <sip:p2.example;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: dlg1\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    r = parse_message(INVITE)
    assert isinstance(r, Request)
    return r


def ok_for(req: Request) -> Response:
    resp = make_response(req, 200, "OK", to_tag="b1")
    for rr in req.get_all("Record-Route"):
        resp.add("Record-Route", rr)
    resp.add("Contact", "<sip:bob@192.0.2.2:5070>")
    out = parse_message(resp.to_bytes())
    assert isinstance(out, Response)
    return out


def test_uas_dialog_route_set_in_order_and_ids() -> None:
    d = Dialog.as_uas(invite(), "b1")
    assert d.key == ("dlg1", "b1", "a1")
    assert d.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert d.remote_target == "sip:alice@192.0.2.1:5060"
    assert d.remote_cseq == 10
    assert Dialog.key_of(invite(), incoming=True) == ("dlg1", "", "a1")


def test_uac_dialog_route_set_reversed_and_requests() -> None:
    req = invite()
    d = Dialog.as_uac(req, ok_for(req))
    assert d.key == ("dlg1", "a1", "b1")
    assert d.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert d.remote_target == "sip:bob@192.0.2.2:5070"
    assert Dialog.key_of(ok_for(req), incoming=True) == d.key
    bye = d.new_request("BYE", "192.0.2.1", via_port=5060)
    assert bye.uri == "sip:bob@192.0.2.2:5070"
    assert bye.cseq.number == 11
    assert bye.get_all("Route") == d.route_set
    assert bye.to.tag == "b1"
    assert bye.from_.tag == "a1"
    assert bye.call_id == "dlg1"
    ack = d.new_request("ACK", "192.0.2.1", cseq=10)
    assert ack.cseq.number == 10
    info = d.new_request("INFO", "192.0.2.1")
    assert info.cseq.number == 12
    assert info.top_via.branch != bye.top_via.branch


def test_remote_cseq_must_increase() -> None:
    d = Dialog.as_uas(invite(), "b1")
    bye = parse_message(INVITE.replace(b"10 INVITE", b"9 BYE").replace(b"INVITE sip", b"BYE sip"))
    assert isinstance(bye, Request)
    with pytest.raises(DialogError) as err:
        d.on_request(bye)
    assert err.value.status == 500
    later = parse_message(
        INVITE.replace(b"10 INVITE", b"11 BYE").replace(b"INVITE sip", b"BYE sip")
    )
    assert isinstance(later, Request)
    d.on_request(later)
    assert d.remote_cseq == 11


def test_target_refresh_by_reinvite_and_response() -> None:
    d = Dialog.as_uas(invite(), "b1")
    re_inv = parse_message(
        INVITE.replace(b"10 INVITE", b"12 INVITE").replace(
            b"alice@192.0.2.1:5060>", b"alice@198.51.100.7:5062>"
        )
    )
    assert isinstance(re_inv, Request)
    d.on_request(re_inv)
    assert d.remote_target == "sip:alice@198.51.100.7:5062"
    req = invite()
    uac = Dialog.as_uac(req, ok_for(req))
    moved = ok_for(req)
    moved.headers = [
        (n, "<sip:bob@203.0.113.5>" if n == "Contact" else v) for n, v in moved.headers
    ]
    uac.on_target_refresh_response(parse_message(moved.to_bytes()))  # type: ignore[arg-type]
    assert uac.remote_target == "sip:bob@203.0.113.5"
