"""Tests for tgsip.sip.auth: RFC 7616 / RFC 2617 vectors, client/server interop, stale, replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tgsip.sip.auth import (
    AuthError,
    AuthResult,
    Challenge,
    DigestClient,
    DigestServer,
    compute_ha1,
    digest_response,
    parse_challenge,
)
from tgsip.sip.headers import parse_auth

# RFC 7616 §3.9.1 worked example.
R7616 = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "uri": "/dir/index.html",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    v = R7616
    ha1 = compute_ha1(v["username"], v["realm"], v["password"], algorithm)
    got = digest_response(
        ha1=ha1,
        method="GET",
        uri=v["uri"],
        nonce=v["nonce"],
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce=v["cnonce"],
    )
    assert got == expected


def test_rfc2617_vector() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    got = digest_response(
        ha1=ha1,
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_client_answers_rfc7616_challenge_like_the_rfc() -> None:
    v = R7616
    challenges = [
        f'Digest realm="{v["realm"]}", qop="auth, auth-int", algorithm=SHA-256, '
        f'nonce="{v["nonce"]}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
        f'Digest realm="{v["realm"]}", qop="auth, auth-int", algorithm=MD5, '
        f'nonce="{v["nonce"]}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    ]
    client = DigestClient(v["username"], v["password"], cnonce_factory=lambda: v["cnonce"])
    h = parse_auth(client.authorize(challenges, "GET", v["uri"]))
    assert h.get("response") == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert h.get("nc") == "00000001"
    assert h.get("opaque") == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert client.last_algorithm == "SHA-256"
    assert "Circle" not in repr(client)
    h2 = parse_auth(client.authorize(challenges, "GET", v["uri"]))
    assert h2.get("nc") == "00000002"


def test_client_picks_strongest_and_skips_unknown() -> None:
    chs = [
        'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"',
        'NoOneKnowsThisScheme opaque-data="x"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n", algorithm=FOO-1, qop="auth"',
    ]
    assert DigestClient.select(chs).algorithm == "SHA-512-256"
    with pytest.raises(AuthError):
        DigestClient.select(['Basic realm="r"', 'Digest realm="r", nonce="n", qop="auth-int"'])


def _server(**kw: Any) -> DigestServer:
    return DigestServer(b"k" * 32, "gw.example", **kw)


def _lookup(password: str) -> Callable[[str, str], str | None]:
    def lookup(user: str, algorithm: str) -> str | None:
        return compute_ha1(user, "gw.example", password, algorithm) if user == "pbx1" else None

    return lookup


@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",), ("SHA-512-256",)])
def test_client_server_interop(algorithms: tuple[str, ...]) -> None:
    server = _server(algorithms=algorithms)
    chs = server.challenges(now=1000.0)
    assert len(chs) == len(algorithms)
    assert parse_challenge(chs[0]).qop == ("auth",)
    client = DigestClient("pbx1", "s3cret-pass")
    auth = client.authorize(chs, "REGISTER", "sip:gw.example")
    verdict = server.verify(auth, "REGISTER", 1001.0, _lookup("s3cret-pass"), uri="sip:gw.example")
    assert verdict.result is AuthResult.OK
    assert verdict.username == "pbx1"
    assert client.last_algorithm == algorithms[0] or algorithms == ("SHA-256", "MD5")


def test_wrong_password_unknown_user_and_method() -> None:
    server = _server()
    chs = server.challenges(now=0.0)
    auth = DigestClient("pbx1", "wrong").authorize(chs, "INVITE", "sip:1@gw")
    assert server.verify(auth, "INVITE", 1.0, _lookup("right")).result is AuthResult.FAILED
    auth = DigestClient("intruder", "right").authorize(chs, "INVITE", "sip:1@gw")
    assert server.verify(auth, "INVITE", 1.0, _lookup("right")).result is AuthResult.FAILED
    auth = DigestClient("pbx1", "right").authorize(chs, "INVITE", "sip:1@gw")
    assert server.verify(auth, "BYE", 1.0, _lookup("right")).result is AuthResult.FAILED
    assert server.verify(auth, "INVITE", 1.0, _lookup("right"), uri="sip:2@gw").result is (
        AuthResult.FAILED
    )
    assert server.verify("Digest garbage", "INVITE", 1.0, _lookup("x")).result is (
        AuthResult.FAILED
    )


def test_stale_nonce_then_fresh() -> None:
    server = _server(nonce_ttl=300.0)
    client = DigestClient("pbx1", "pw")
    chs = server.challenges(now=0.0)
    auth = client.authorize(chs, "REGISTER", "sip:gw.example")
    v = server.verify(auth, "REGISTER", 301.0, _lookup("pw"))
    assert v.result is AuthResult.STALE
    fresh = server.challenges(now=301.0, stale=True)
    assert parse_challenge(fresh[0]).stale
    auth = client.authorize(fresh, "REGISTER", "sip:gw.example")
    assert server.verify(auth, "REGISTER", 302.0, _lookup("pw")).result is AuthResult.OK
    # A stale nonce with a wrong password is a failure, not stale.
    bad = DigestClient("pbx1", "nope").authorize(chs, "REGISTER", "sip:gw.example")
    assert server.verify(bad, "REGISTER", 400.0, _lookup("pw")).result is AuthResult.FAILED


def test_forged_nonce_and_other_secret() -> None:
    server = _server()
    other = DigestServer(b"z" * 32, "gw.example")
    auth = DigestClient("pbx1", "pw").authorize(other.challenges(0.0), "REGISTER", "sip:g")
    assert server.verify(auth, "REGISTER", 1.0, _lookup("pw")).result is AuthResult.FAILED
    forged = Challenge("gw.example", "AAAAAAAA", "SHA-256", ("auth",))
    auth = DigestClient("pbx1", "pw").authorize([forged], "REGISTER", "sip:g")
    assert server.verify(auth, "REGISTER", 1.0, _lookup("pw")).result is AuthResult.FAILED


def test_nc_replay_window() -> None:
    server = _server(nc_window=4)
    chs = server.challenges(now=0.0)
    client = DigestClient("pbx1", "pw")
    auths = [client.authorize(chs, "OPTIONS", "sip:g") for _ in range(6)]
    lookup = _lookup("pw")
    ok = AuthResult.OK
    assert server.verify(auths[0], "OPTIONS", 1.0, lookup).result is ok
    assert server.verify(auths[0], "OPTIONS", 1.0, lookup).result is AuthResult.FAILED
    assert server.verify(auths[2], "OPTIONS", 1.0, lookup).result is ok
    assert server.verify(auths[1], "OPTIONS", 1.0, lookup).result is ok
    assert server.verify(auths[5], "OPTIONS", 1.0, lookup).result is ok
    assert server.verify(auths[1], "OPTIONS", 1.0, lookup).result is AuthResult.FAILED


def test_legacy_no_qop() -> None:
    strict = _server()
    lax = _server(allow_no_qop=True)
    nonce = lax.make_nonce(0.0)
    chs = [Challenge("gw.example", nonce, "MD5").to_header()]
    auth = DigestClient("pbx1", "pw").authorize(chs, "INVITE", "sip:g")
    assert "qop" not in parse_auth(auth).params
    assert lax.verify(auth, "INVITE", 1.0, _lookup("pw")).result is AuthResult.OK
    assert strict.verify(auth, "INVITE", 1.0, _lookup("pw")).result is AuthResult.FAILED
