"""MTProto 2.0 server: transports, auth-key creation and the encrypted session.

References: https://core.telegram.org/mtproto/auth_key (DH exchange),
https://core.telegram.org/mtproto/description (encrypted messages, msg_id and seq_no rules),
https://core.telegram.org/mtproto/service_messages (acks, containers, gzip, rpc_result,
bad_msg_notification, bad_server_salt, new_session_created, ping).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from typing import Any

from telethon.tl import functions, types  # type: ignore[import-untyped]

from tgsip.sandbox import crypto
from tgsip.sandbox.tl import (
    TLDecodeError,
    is_request,
    parse_object,
    read_bytes_field,
    serialize,
    tl_bytes,
)
from tgsip.sandbox.transport import Codec, TransportError, detect

log = logging.getLogger(__name__)

RPC_RESULT = 0xF35C6D01
RPC_ERROR = 0x2144CA19
MSG_CONTAINER = 0x73F1F8DC
GZIP_PACKED = 0x3072CFA1
MSGS_ACK = 0x62D6B459
PING = 0x7ABE77EC
PING_DELAY_DISCONNECT = 0xF3427B8C
PONG = 0x347773C5
BAD_MSG_NOTIFICATION = 0xA7EFF811
BAD_SERVER_SALT = 0xEDAB447B
NEW_SESSION_CREATED = 0x9EC20908
DESTROY_SESSION = 0xE7512126
GET_FUTURE_SALTS = 0xB921BD04

MSG_TOO_OLD = 300
MSG_TOO_NEW = 30


class RpcError(Exception):
    """An RPC failure answered as ``rpc_error`` (code and Telegram's error name)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class Connection:
    """One TCP connection: its transport, auth key and MTProto session state."""

    def __init__(self, server: MTProtoServer, codec: Codec, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.codec = codec
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.auth_key: bytes | None = None
        self.key_id = 0
        self.session_id: int | None = None
        self.salt = 0
        self._seq = 0
        self._last_msg_id = 0
        self._seen: set[int] = set()
        self._handshake: dict[str, Any] = {}
        self.layer = 0
        self.closed = False
        self._disconnect_timer: asyncio.TimerHandle | None = None
        self._rpc_tasks: set[asyncio.Task[None]] = set()

    # --- outgoing ----------------------------------------------------------------------

    def _new_msg_id(self, response: bool) -> int:
        now = time.time()
        msg_id = (int(now) << 32) | ((int((now % 1) * 2**32)) & 0xFFFFFFFC)
        msg_id |= 1 if response else 3
        while msg_id <= self._last_msg_id:
            msg_id += 4
        self._last_msg_id = msg_id
        return msg_id

    def _seq_no(self, content_related: bool) -> int:
        if content_related:
            self._seq += 1
            return self._seq * 2 - 1
        return self._seq * 2

    def send_plain(self, body: bytes) -> None:
        msg_id = self._new_msg_id(True)
        self.codec.send(struct.pack("<qqi", 0, msg_id, len(body)) + body)

    def send_encrypted(self, body: bytes, content_related: bool, response: bool = True) -> None:
        """Encrypt one message for this connection's session (MTProto 2.0, x = 8)."""
        if self.auth_key is None or self.session_id is None or self.closed:
            return
        msg_id = self._new_msg_id(response)
        seq = self._seq_no(content_related)
        plain = struct.pack("<qqqii", self.salt, self.session_id, msg_id, seq, len(body)) + body
        plain += os.urandom(-(len(plain) + 12) % 16 + 12)
        msg_key = crypto.msg_key_for(self.auth_key, plain, from_client=False)
        key, iv = crypto.kdf2(self.auth_key, msg_key, from_client=False)
        payload = struct.pack("<Q", self.key_id) + msg_key + crypto.ige_encrypt(plain, key, iv)
        self.codec.send(payload)

    def send_update(self, update: object) -> None:
        """Push an Updates object to this connection (content-related, server-initiated)."""
        self.send_encrypted(serialize(update), content_related=True, response=False)

    # --- incoming ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve frames until the peer goes away or breaks the protocol."""
        while not self.closed:
            packet = await self.codec.read_packet()
            await self._handle_packet(packet)
            await self.writer.drain()

    async def _handle_packet(self, packet: bytes) -> None:
        if len(packet) < 8:
            raise TransportError("packet shorter than auth_key_id")
        (key_id,) = struct.unpack_from("<Q", packet)
        if key_id == 0:
            self._handle_plain(packet)
            return
        if self.auth_key is None or key_id != self.key_id:
            record = self.server.world.auth_key(key_id)
            if record is None:
                self.codec.send_error(-404)
                raise TransportError("unknown auth key")
            self.auth_key, self.key_id = record.auth_key, key_id
            self.salt = self.server.salt_for(key_id)
        await self._handle_encrypted(packet)

    # --- auth key creation -------------------------------------------------------------

    def _handle_plain(self, packet: bytes) -> None:
        if len(packet) < 20:
            raise TransportError("short plain message")
        _, _msg_id, length = struct.unpack_from("<qqi", packet)
        body = packet[20 : 20 + length]
        try:
            obj = parse_object(body)
        except TLDecodeError as exc:
            raise TransportError(f"bad plain message: {exc}") from exc
        if isinstance(obj, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            self._handshake = {"nonce": obj.nonce, "server_nonce": _rand_int128()}
            pq, _p, _q = self.server.pq
            self.send_plain(
                serialize(
                    types.ResPQ(
                        nonce=obj.nonce,
                        server_nonce=self._handshake["server_nonce"],
                        pq=crypto.int_to_min_bytes(pq),
                        server_public_key_fingerprints=[self.server.rsa.fingerprint],
                    )
                )
            )
        elif isinstance(obj, functions.ReqDHParamsRequest):
            self._req_dh_params(obj)
        elif isinstance(obj, functions.SetClientDHParamsRequest):
            self._set_client_dh_params(obj)
        else:
            raise TransportError("unexpected plain message")

    def _check_nonces(self, obj: Any) -> None:
        hs = self._handshake
        if not hs or obj.nonce != hs["nonce"] or obj.server_nonce != hs["server_nonce"]:
            raise TransportError("handshake nonce mismatch")

    def _req_dh_params(self, obj: Any) -> None:
        self._check_nonces(obj)
        if obj.public_key_fingerprint != self.server.rsa.fingerprint:
            raise TransportError("unknown RSA fingerprint")
        _pq, p, q = self.server.pq
        if obj.p != crypto.int_to_min_bytes(p) or obj.q != crypto.int_to_min_bytes(q):
            raise TransportError("wrong factorization")
        try:
            plain = self.server.rsa.decrypt_inner_data(obj.encrypted_data)
        except ValueError as exc:
            raise TransportError("bad RSA block") from exc
        if plain is None:
            raise TransportError("p_q_inner_data padding check failed")
        inner = _parse_inner(plain)
        if inner is None:
            inner = _parse_inner(plain[20:])
            if inner is None or crypto.sha1(bytes(inner)) != plain[:20]:
                raise TransportError("bad p_q_inner_data")
        if (
            inner.nonce != self._handshake["nonce"]
            or inner.server_nonce != self._handshake["server_nonce"]
        ):
            raise TransportError("inner nonce mismatch")
        new_nonce = inner.new_nonce.to_bytes(32, "little", signed=True)
        server_nonce = self._handshake["server_nonce"].to_bytes(16, "little", signed=True)
        a = int.from_bytes(os.urandom(256), "big")
        g_a = pow(crypto.DH_G, a, crypto.DH_PRIME)
        answer = bytes(
            types.ServerDHInnerData(
                nonce=inner.nonce,
                server_nonce=inner.server_nonce,
                g=crypto.DH_G,
                dh_prime=crypto.int_to_256(crypto.DH_PRIME),
                g_a=crypto.int_to_256(g_a),
                server_time=int(time.time()),
            )
        )
        data = crypto.sha1(answer) + answer
        data += os.urandom(-len(data) % 16)
        key, iv = crypto.tmp_aes_from_nonces(server_nonce, new_nonce)
        self._handshake.update(a=a, new_nonce=new_nonce, key=key, iv=iv)
        self.send_plain(
            serialize(
                types.ServerDHParamsOk(
                    nonce=inner.nonce,
                    server_nonce=inner.server_nonce,
                    encrypted_answer=crypto.ige_encrypt(data, key, iv),
                )
            )
        )

    def _set_client_dh_params(self, obj: Any) -> None:
        self._check_nonces(obj)
        hs = self._handshake
        if "a" not in hs or len(obj.encrypted_data) % 16:
            raise TransportError("set_client_DH_params out of order")
        plain = crypto.ige_decrypt(obj.encrypted_data, hs["key"], hs["iv"])
        inner = None
        with contextlib.suppress(TLDecodeError):
            inner = parse_object(plain[20:])
        if not isinstance(inner, types.ClientDHInnerData):
            raise TransportError("bad client_DH_inner_data")
        if crypto.sha1(bytes(inner)) != plain[:20]:
            raise TransportError("client_DH_inner_data hash mismatch")
        g_b = int.from_bytes(inner.g_b, "big")
        p = crypto.DH_PRIME
        safety = 1 << (2048 - 64)
        if not safety <= g_b <= p - safety:
            raise TransportError("g_b out of range")
        # The key is the big-endian value without leading zero bytes, as the client
        # computes it from the same integer.
        auth_key = crypto.int_to_min_bytes(pow(g_b, hs["a"], p))
        key_id = crypto.auth_key_id(auth_key)
        self.server.world.add_auth_key(key_id, auth_key, self.server.now())
        nnh = crypto.new_nonce_hash(auth_key, hs["new_nonce"], 1)
        self._handshake = {}
        self.send_plain(
            serialize(
                types.DhGenOk(
                    nonce=obj.nonce,
                    server_nonce=obj.server_nonce,
                    new_nonce_hash1=int.from_bytes(nnh, "little", signed=True),
                )
            )
        )

    # --- encrypted session -------------------------------------------------------------

    async def _handle_encrypted(self, packet: bytes) -> None:
        assert self.auth_key is not None
        if len(packet) < 24 + 32 or (len(packet) - 24) % 16:
            raise TransportError("encrypted message with a bad length")
        msg_key = packet[8:24]
        key, iv = crypto.kdf2(self.auth_key, msg_key, from_client=True)
        plain = crypto.ige_decrypt(packet[24:], key, iv)
        if crypto.msg_key_for(self.auth_key, plain, from_client=True) != msg_key:
            self.codec.send_error(-404)
            raise TransportError("msg_key mismatch")
        salt, session_id, msg_id, seq_no, length = struct.unpack_from("<qqqii", plain)
        if length < 0 or 32 + length > len(plain) or len(plain) - 32 - length > 1024:
            raise TransportError("bad inner length")
        body = plain[32 : 32 + length]
        if session_id != self.session_id:
            self.session_id = session_id
            self._seq = 0
            self._seen.clear()
            self.send_encrypted(
                struct.pack("<Iqqq", NEW_SESSION_CREATED, msg_id, secrets.randbits(63), self.salt),
                content_related=True,
                response=False,
            )
        if self._bad_msg(msg_id, seq_no):
            return
        if salt != self.salt:
            self.send_encrypted(
                struct.pack("<Iqiiq", BAD_SERVER_SALT, msg_id, seq_no, 48, self.salt),
                content_related=False,
            )
            return
        await self._handle_message(msg_id, seq_no, body)

    def _arm_disconnect(self, delay: int) -> None:
        """ping_delay_disconnect: close unless another ping arrives within ``delay`` s."""
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        self._disconnect_timer = asyncio.get_running_loop().call_later(max(1, delay), self.close)

    def close(self) -> None:
        self.closed = True
        for task in list(self._rpc_tasks):
            task.cancel()
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        self.writer.close()

    def _bad_msg(self, msg_id: int, seq_no: int) -> bool:
        code = 0
        now = time.time()
        msg_time = msg_id >> 32
        if msg_id % 4 != 0:
            code = 18
        elif msg_time < now - MSG_TOO_OLD:
            code = 16
        elif msg_time > now + MSG_TOO_NEW:
            code = 17
        elif msg_id in self._seen:
            code = 19
        if code:
            self.send_encrypted(
                struct.pack("<Iqii", BAD_MSG_NOTIFICATION, msg_id, seq_no, code),
                content_related=False,
            )
            return True
        self._seen.add(msg_id)
        if len(self._seen) > 4096:
            self._seen = set(sorted(self._seen)[-2048:])
        return False

    async def _handle_message(self, msg_id: int, seq_no: int, body: bytes, depth: int = 0) -> None:
        if len(body) < 4:
            self._rpc_error(msg_id, 400, "INPUT_FETCH_ERROR")
            return
        (cid,) = struct.unpack_from("<I", body)
        if cid == MSG_CONTAINER and depth == 0:
            await self._handle_container(msg_id, body)
        elif cid == GZIP_PACKED:
            try:
                data, _ = read_bytes_field(body, 4)
                inner = gzip.decompress(data)
            except (TLDecodeError, OSError, EOFError):
                self._rpc_error(msg_id, 400, "INPUT_FETCH_ERROR")
                return
            await self._handle_message(msg_id, seq_no, inner, depth + 1)
        elif cid == MSGS_ACK:
            return
        elif cid in (PING, PING_DELAY_DISCONNECT) and len(body) >= 12:
            (ping_id,) = struct.unpack_from("<q", body, 4)
            self.send_encrypted(struct.pack("<Iqq", PONG, msg_id, ping_id), content_related=False)
            if cid == PING_DELAY_DISCONNECT and len(body) >= 16:
                (delay,) = struct.unpack_from("<i", body, 12)
                self._arm_disconnect(delay)
        elif cid in (DESTROY_SESSION, GET_FUTURE_SALTS):
            self._rpc_error(msg_id, 400, "METHOD_NOT_SUPPORTED")
        else:
            # Each call runs as its own task so a slow one (a bot's callback answer) does not
            # hold up the rest; calls without awaits still complete in arrival order.
            task = asyncio.create_task(self._handle_rpc(msg_id, body))
            self._rpc_tasks.add(task)
            task.add_done_callback(self._rpc_tasks.discard)

    async def _handle_container(self, msg_id: int, body: bytes) -> None:
        if len(body) < 8:
            self._rpc_error(msg_id, 400, "INPUT_FETCH_ERROR")
            return
        (count,) = struct.unpack_from("<i", body, 4)
        offset = 8
        for _ in range(max(0, min(count, 1024))):
            if offset + 16 > len(body):
                raise TransportError("truncated container")
            inner_id, inner_seq, length = struct.unpack_from("<qii", body, offset)
            offset += 16
            if length < 0 or offset + length > len(body):
                raise TransportError("truncated container")
            inner = body[offset : offset + length]
            offset += length
            if self._bad_msg(inner_id, inner_seq):
                continue
            await self._handle_message(inner_id, inner_seq, inner, depth=1)

    def _rpc_error(self, msg_id: int, code: int, message: str) -> None:
        body = struct.pack("<Iq", RPC_RESULT, msg_id) + struct.pack("<Ii", RPC_ERROR, code)
        body += tl_bytes(message.encode())
        self.send_encrypted(body, content_related=True)

    async def _handle_rpc(self, msg_id: int, body: bytes) -> None:
        try:
            request = parse_object(body)
        except TLDecodeError as exc:
            name = exc.rpc_name
            if name == "INPUT_CONSTRUCTOR_INVALID":
                name = "INPUT_METHOD_INVALID"
            self._rpc_error(msg_id, 400, name)
            return
        if not is_request(request):
            self._rpc_error(msg_id, 400, "INPUT_METHOD_INVALID")
            return
        try:
            result = await self.server.dispatch(self, request)
            data = serialize(result)
        except RpcError as exc:
            self._rpc_error(msg_id, exc.code, exc.message)
            return
        except Exception:
            log.exception("internal error in %s", type(request).__name__)
            self._rpc_error(msg_id, 500, "INTERNAL")
            return
        self.send_encrypted(struct.pack("<Iq", RPC_RESULT, msg_id) + data, content_related=True)


def _parse_inner(data: bytes) -> Any:
    """A p_q_inner_data(_dc) object at the start of ``data`` (trailing padding ignored)."""
    try:
        inner = parse_object(data)
    except TLDecodeError:
        return None
    if isinstance(inner, types.PQInnerData | types.PQInnerDataDc):
        return inner
    return None


def _rand_int128() -> int:
    return int.from_bytes(os.urandom(16), "little", signed=True)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def _make_pq() -> tuple[int, int, int]:
    """A pq product of two distinct random 31-bit primes (p < q), as Telegram sends."""
    primes: list[int] = []
    while len(primes) < 2:
        n = secrets.randbits(31) | (1 << 30) | 1
        while not _is_prime(n):
            n += 2
        if n not in primes:
            primes.append(n)
    p, q = sorted(primes)
    return p * q, p, q


class MTProtoServer:
    """Accepts MTProto connections and routes parsed requests to ``dispatch``.

    ``dispatch(connection, request)`` returns the result object or raises RpcError.
    """

    def __init__(
        self,
        world: Any,
        rsa_key: crypto.SandboxRsaKey,
        dispatch: Callable[[Connection, Any], Any],
        now: Callable[[], int],
    ) -> None:
        self.world = world
        self.rsa = rsa_key
        self._dispatch = dispatch
        self.now = now
        self.pq = _make_pq()
        self._salts: dict[int, int] = {}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def salt_for(self, key_id: int) -> int:
        if key_id not in self._salts:
            self._salts[key_id] = secrets.randbits(63)
        return self._salts[key_id]

    async def dispatch(self, conn: Connection, request: Any) -> Any:
        result = self._dispatch(conn, request)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port`` (0 picks a free port); returns the bound port."""
        self._server = await asyncio.start_server(self._on_client, host, port)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn: Connection | None = None
        try:
            codec = await asyncio.wait_for(detect(reader, writer), timeout=30)
            conn = Connection(self, codec, writer)
            self.connections.add(conn)
            await conn.run()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            TransportError,
            TimeoutError,
            asyncio.CancelledError,
        ) as exc:
            log.debug("connection closed: %s", type(exc).__name__)
        except Exception:
            log.exception("connection failed")
        finally:
            if conn is not None:
                conn.close()
                self.connections.discard(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
