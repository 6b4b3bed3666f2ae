"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617 legacy), sans-I/O.

Client side: :class:`DigestClient` answers 401/407 challenges, choosing the strongest
algorithm offered (SHA-512-256 > SHA-256 > MD5; a local policy RFC 8760 §2.4 allows, chosen
against downgrade), with a fresh cnonce and a per-nonce nonce-count.

Server side: :class:`DigestServer` issues stateless nonces (timestamp + random, signed with
HMAC-SHA-256 over the realm), verifies responses, reports an expired but otherwise correct
nonce as *stale* (RFC 7616 §3.3 ``stale=true``), and rejects replayed nonce-counts with a
sliding window. Time is injected (``now``, seconds); nothing here reads a clock.
Passwords and HA1 values are never put in exception messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Sequence
from enum import Enum

import msgspec

from tgsip.sip.headers import AuthHeader, HeaderError, format_auth, parse_auth

__all__ = [
    "ALGORITHMS",
    "AuthError",
    "AuthResult",
    "Challenge",
    "DigestClient",
    "DigestServer",
    "Verdict",
    "compute_ha1",
    "digest_response",
    "parse_challenge",
]

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": lambda b: hashlib.new("sha512_256", b).hexdigest(),
}
# Strongest first: the client's preference order.
ALGORITHMS = ("SHA-512-256", "SHA-256", "MD5")


class AuthError(ValueError):
    """A challenge or credentials header is malformed or unusable."""


def _base(algorithm: str) -> tuple[str, bool]:
    alg = algorithm.upper()
    sess = alg.endswith("-SESS")
    base = alg[:-5] if sess else alg
    if base not in _HASHES:
        raise AuthError(f"Unsupported algorithm {algorithm}")
    return base, sess


def _h(algorithm: str, text: str) -> str:
    return _HASHES[_base(algorithm)[0]](text.encode("utf-8"))


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) (RFC 7616 §3.4.2; without the -sess step)."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def digest_response(
    *,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1 without qop).

    ``ha1`` is :func:`compute_ha1`; the ``-sess`` variants derive the session key here.
    """
    base, sess = _base(algorithm)
    if sess:
        if cnonce is None:
            raise AuthError("-sess needs a cnonce")
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(base, f"{method}:{uri}:{_HASHES[base](body)}")
    else:
        ha2 = _h(base, f"{method}:{uri}")
    if qop is None:
        return _h(base, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise AuthError("qop needs nc and cnonce")
    return _h(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


class Challenge(msgspec.Struct, frozen=True):
    """A Digest challenge (WWW-Authenticate / Proxy-Authenticate, RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    def to_header(self) -> str:
        """The header value."""
        params = [("realm", self.realm), ("nonce", self.nonce)]
        if self.opaque is not None:
            params.append(("opaque", self.opaque))
        params.append(("algorithm", self.algorithm))
        if self.qop:
            params.append(("qop", ",".join(self.qop)))
        if self.stale:
            params.append(("stale", "true"))
        return format_auth("Digest", params, challenge=True)


def _parse(value: str) -> AuthHeader:
    try:
        return parse_auth(value)
    except HeaderError as exc:
        raise AuthError(str(exc)) from None


def parse_challenge(value: str) -> Challenge:
    """Parse a Digest challenge; raises :class:`AuthError` (also for non-Digest schemes)."""
    h = _parse(value)
    if h.scheme.lower() != "digest":
        raise AuthError("Not a Digest challenge")
    realm, nonce = h.get("realm"), h.get("nonce")
    if realm is None or nonce is None:
        raise AuthError("Challenge lacks realm or nonce")
    qop = tuple(q.strip() for q in (h.get("qop") or "").split(",") if q.strip())
    return Challenge(
        realm,
        nonce,
        h.get("algorithm") or "MD5",
        qop,
        h.get("opaque"),
        (h.get("stale") or "").lower() == "true",
    )


class DigestClient:
    """Answers digest challenges for one account (RFC 3261 §22.2, §22.3).

    ``cnonce_factory`` defaults to 96 random bits; nonce-counts increase per nonce.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self._cnonce = cnonce_factory or (lambda: secrets.token_hex(12))
        self._nc: dict[str, int] = {}
        self.last_algorithm: str | None = None

    def __repr__(self) -> str:
        return f"DigestClient(username={self.username!r})"

    @staticmethod
    def select(challenges: Sequence[str | Challenge]) -> Challenge:
        """The strongest usable Digest challenge (unknown schemes/algorithms skipped)."""
        usable: list[Challenge] = []
        for c in challenges:
            try:
                ch = c if isinstance(c, Challenge) else parse_challenge(c)
                _base(ch.algorithm)
            except AuthError:
                continue
            if ch.qop and "auth" not in ch.qop:
                continue  # auth-int only: we do not sign bodies
            usable.append(ch)
        if not usable:
            raise AuthError("No usable Digest challenge")

        def rank(ch: Challenge) -> int:
            return ALGORITHMS.index(_base(ch.algorithm)[0])

        return min(usable, key=rank)

    def authorize(self, challenges: Sequence[str | Challenge], method: str, uri: str) -> str:
        """The Authorization / Proxy-Authorization value answering ``challenges``."""
        ch = self.select(challenges)
        params: list[tuple[str, str]] = [
            ("username", self.username),
            ("realm", ch.realm),
            ("nonce", ch.nonce),
            ("uri", uri),
        ]
        ha1 = compute_ha1(self.username, ch.realm, self._password, ch.algorithm)
        if ch.qop:
            nc_n = self._nc.get(ch.nonce, 0) + 1
            self._nc = {ch.nonce: nc_n}  # only the current nonce's count is kept
            nc, cnonce = f"{nc_n:08x}", self._cnonce()
            resp = digest_response(
                ha1=ha1,
                method=method,
                uri=uri,
                nonce=ch.nonce,
                algorithm=ch.algorithm,
                qop="auth",
                nc=nc,
                cnonce=cnonce,
            )
            params.append(("response", resp))
            params += [("algorithm", ch.algorithm), ("cnonce", cnonce)]
            if ch.opaque is not None:
                params.append(("opaque", ch.opaque))
            params += [("qop", "auth"), ("nc", nc)]
        else:
            resp = digest_response(
                ha1=ha1, method=method, uri=uri, nonce=ch.nonce, algorithm=ch.algorithm
            )
            params += [("response", resp), ("algorithm", ch.algorithm)]
            if ch.opaque is not None:
                params.append(("opaque", ch.opaque))
        self.last_algorithm = ch.algorithm
        return format_auth("Digest", params)


class AuthResult(Enum):
    """Outcome of :meth:`DigestServer.verify`."""

    OK = "ok"
    STALE = "stale"  # correct digest, expired nonce: re-challenge with stale=true
    FAILED = "failed"  # wrong credentials, unknown user, forged nonce or replay: 403 after retry


class Verdict(msgspec.Struct, frozen=True):
    """Result of a verification; ``username`` is the claimed user (may be None)."""

    result: AuthResult
    username: str | None = None
    reason: str = ""


_NONCE_LEN = 8 + 8 + 16


class DigestServer:
    """Challenges and verifies digest credentials for one realm.

    ``secret`` signs nonces (keep it per process or persist it); ``algorithms`` is the
    challenge order (RFC 8760 §2.4: one header per algorithm, preferred first);
    ``nonce_ttl`` seconds; ``allow_no_qop`` accepts RFC 2069-style answers without qop
    (no replay protection beyond expiry). ``ha1_lookup(username, algorithm)`` returns the
    stored HA1 for that algorithm or None.
    """

    def __init__(
        self,
        secret: bytes,
        realm: str,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        allow_no_qop: bool = False,
        nc_window: int = 64,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        for a in algorithms:
            _base(a)
        self._secret = secret
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self.nonce_ttl = nonce_ttl
        self.allow_no_qop = allow_no_qop
        self.nc_window = nc_window
        self._max_tracked = max_tracked_nonces
        # nonce -> (issue time, highest nc seen, bitmask of the window below it)
        self._seen: dict[str, tuple[float, int, int]] = {}

    def __repr__(self) -> str:
        return f"DigestServer(realm={self.realm!r}, algorithms={self.algorithms!r})"

    def _sign(self, body: bytes) -> bytes:
        mac = hmac.new(self._secret, body + self.realm.encode("utf-8"), hashlib.sha256)
        return mac.digest()[:16]

    def make_nonce(self, now: float) -> str:
        """A fresh signed nonce carrying ``now`` (milliseconds)."""
        body = struct.pack(">Q", int(now * 1000)) + secrets.token_bytes(8)
        return base64.urlsafe_b64encode(body + self._sign(body)).decode("ascii").rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        if len(raw) != _NONCE_LEN or not hmac.compare_digest(raw[16:], self._sign(raw[:16])):
            return None
        return float(struct.unpack(">Q", raw[:8])[0]) / 1000.0

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, sharing one nonce."""
        nonce = self.make_nonce(now)
        return [
            Challenge(self.realm, nonce, alg, ("auth",), None, stale).to_header()
            for alg in self.algorithms
        ]

    def verify(
        self,
        authorization: str | AuthHeader,
        method: str,
        now: float,
        ha1_lookup: Callable[[str, str], str | None],
        *,
        uri: str | None = None,
    ) -> Verdict:
        """Verify an Authorization/Proxy-Authorization value (RFC 7616 §3.4, §3.5).

        ``uri`` (the Request-URI), when given, must equal the digest-uri. A correct answer
        on an expired nonce gives STALE; a replayed or out-of-window nonce-count gives FAILED.
        ``authorization`` may be given already parsed (:func:`tgsip.sip.headers.parse_auth`).
        """
        if isinstance(authorization, AuthHeader):
            h = authorization
        else:
            try:
                h = _parse(authorization)
            except AuthError:
                return Verdict(AuthResult.FAILED, None, "malformed credentials")
        username = h.get("username")
        if h.scheme.lower() != "digest" or username is None:
            return Verdict(AuthResult.FAILED, username, "not digest")
        nonce, resp, duri = h.get("nonce"), h.get("response"), h.get("uri")
        algorithm = h.get("algorithm") or "MD5"
        if nonce is None or resp is None or duri is None:
            return Verdict(AuthResult.FAILED, username, "missing parameters")
        if h.get("realm") != self.realm:
            return Verdict(AuthResult.FAILED, username, "wrong realm")
        if algorithm.upper() not in (a.upper() for a in self.algorithms):
            return Verdict(AuthResult.FAILED, username, "algorithm not offered")
        if uri is not None and duri != uri:
            return Verdict(AuthResult.FAILED, username, "digest-uri mismatch")
        issued = self._nonce_time(nonce)
        if issued is None:
            return Verdict(AuthResult.FAILED, username, "unknown nonce")
        qop, nc, cnonce = h.get("qop"), h.get("nc"), h.get("cnonce")
        if qop is None and not self.allow_no_qop:
            return Verdict(AuthResult.FAILED, username, "qop required")
        if qop is not None and qop != "auth":
            return Verdict(AuthResult.FAILED, username, "unsupported qop")
        nc_val = 0
        if qop is not None:
            if nc is None or cnonce is None or len(nc) != 8:
                return Verdict(AuthResult.FAILED, username, "bad nc/cnonce")
            try:
                nc_val = int(nc, 16)
            except ValueError:
                return Verdict(AuthResult.FAILED, username, "bad nc")
        ha1 = ha1_lookup(username, _base(algorithm)[0])
        if ha1 is None:
            return Verdict(AuthResult.FAILED, username, "bad credentials")
        try:
            expected = digest_response(
                ha1=ha1,
                method=method,
                uri=duri,
                nonce=nonce,
                algorithm=algorithm,
                qop=qop,
                nc=nc,
                cnonce=cnonce,
            )
        except AuthError:
            return Verdict(AuthResult.FAILED, username, "bad parameters")
        if not hmac.compare_digest(expected, resp.lower()):
            return Verdict(AuthResult.FAILED, username, "bad credentials")
        if now - issued > self.nonce_ttl or issued - now > 5.0:
            self._seen.pop(nonce, None)
            return Verdict(AuthResult.STALE, username, "nonce expired")
        if qop is not None and not self._accept_nc(nonce, issued, nc_val, now):
            return Verdict(AuthResult.FAILED, username, "nonce-count replay")
        return Verdict(AuthResult.OK, username)

    def _accept_nc(self, nonce: str, issued: float, nc: int, now: float) -> bool:
        if nc < 1:
            return False
        entry = self._seen.get(nonce)
        if entry is None:
            if len(self._seen) >= self._max_tracked:
                self._purge(now)
            self._seen[nonce] = (issued, nc, 1)
            return True
        _, high, mask = entry
        if nc > high:
            shift = nc - high
            mask = ((mask << shift) | 1) & ((1 << self.nc_window) - 1)
            self._seen[nonce] = (issued, nc, mask)
            return True
        offset = high - nc
        if offset >= self.nc_window or mask & (1 << offset):
            return False
        self._seen[nonce] = (issued, high, mask | (1 << offset))
        return True

    def _purge(self, now: float) -> None:
        cutoff = now - self.nonce_ttl
        self._seen = {n: e for n, e in self._seen.items() if e[0] >= cutoff}
        while len(self._seen) >= self._max_tracked:
            self._seen.pop(next(iter(self._seen)))
