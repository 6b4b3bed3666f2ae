"""Telegram API methods served by the sandbox, mapping TL requests onto the World.

Error names are Telegram's (https://core.telegram.org/api/errors). Requests arrive already
parsed by Telethon's schema; answers are Telethon TL objects.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telethon.tl import functions, types  # type: ignore[import-untyped]

from tgsip.sandbox import crypto
from tgsip.sandbox.rpc_calls import (
    CALL_CONNECT_TIMEOUT_MS,
    CALL_PACKET_TIMEOUT_MS,
    CALL_RECEIVE_TIMEOUT_MS,
    CALL_RING_TIMEOUT_MS,
    CallsApi,
)
from tgsip.sandbox.rpc_media import MediaApi
from tgsip.sandbox.server import Connection, RpcError
from tgsip.sandbox.world import SERVICE_USER_ID, Button, Message, User, WorldError

if TYPE_CHECKING:
    from tgsip.sandbox.sandbox import Sandbox

DC_ID = 2
CODE_LENGTH = 5
FLOOD_CODES = 5
FLOOD_WINDOW = 60
SRP_TTL = 300
RECOVERY_TTL = 3600
BOT_ANSWER_TIMEOUT = 10.0
LOGIN_TOKEN_TTL = 30

_NO_AUTH = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
    functions.help.GetConfigRequest,
    functions.help.GetNearestDcRequest,
    functions.auth.SendCodeRequest,
    functions.auth.SignInRequest,
    functions.auth.SignUpRequest,
    functions.auth.CheckPasswordRequest,
    functions.auth.RequestPasswordRecoveryRequest,
    functions.auth.RecoverPasswordRequest,
    functions.auth.CheckRecoveryPasswordRequest,
    functions.auth.ExportLoginTokenRequest,
    functions.account.GetPasswordRequest,
    functions.auth.LogOutRequest,
)

_PRIVACY_KEYS = {
    types.InputPrivacyKeyStatusTimestamp: ("status_timestamp", types.PrivacyKeyStatusTimestamp),
    types.InputPrivacyKeyPhoneCall: ("phone_call", types.PrivacyKeyPhoneCall),
    types.InputPrivacyKeyPhoneNumber: ("phone_number", types.PrivacyKeyPhoneNumber),
    types.InputPrivacyKeyPhoneP2P: ("phone_p2p", types.PrivacyKeyPhoneP2P),
    types.InputPrivacyKeyChatInvite: ("chat_invite", types.PrivacyKeyChatInvite),
    types.InputPrivacyKeyForwards: ("forwards", types.PrivacyKeyForwards),
    types.InputPrivacyKeyProfilePhoto: ("profile_photo", types.PrivacyKeyProfilePhoto),
}


@dataclass
class _SrpSession:
    user_id: int
    b: int
    expires: int


@dataclass
class _LoginToken:
    key_id: int
    expires: int
    accepted_by: int | None = None


@dataclass
class Api(CallsApi, MediaApi):
    """Method handlers bound to one Sandbox (its world, clock and live connections)."""

    sandbox: Sandbox
    _srp: dict[int, _SrpSession] = field(default_factory=dict)
    _login_tokens: dict[bytes, _LoginToken] = field(default_factory=dict)

    # --- helpers -----------------------------------------------------------------------

    @property
    def world(self) -> Any:
        return self.sandbox.world

    def now(self) -> int:
        return self.sandbox.now()

    def user_of(self, conn: Connection) -> User | None:
        record = self.world.auth_key(conn.key_id)
        if record is None or record.user_id is None:
            return None
        user: User | None = self.world.user_by_id(record.user_id)
        return user

    def me(self, conn: Connection) -> User:
        user = self.user_of(conn)
        if user is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        return user

    def tl_user(self, user: User, viewer: User | None) -> Any:
        is_self = viewer is not None and viewer.id == user.id
        contact = viewer is not None and self.world.is_contact(viewer.id, user.id)
        show_phone = is_self or contact or user.id == SERVICE_USER_ID
        return types.User(
            id=user.id,
            is_self=is_self,
            contact=contact,
            bot=user.is_bot,
            verified=user.id == SERVICE_USER_ID,
            support=user.id == SERVICE_USER_ID,
            access_hash=user.access_hash,
            first_name=user.first_name,
            last_name=user.last_name or None,
            username=user.username,
            phone=user.phone if show_phone else None,
            status=None if user.is_bot else types.UserStatusRecently(),
            bot_info_version=1 if user.is_bot else None,
        )

    def tl_users(self, ids: set[int], viewer: User) -> list[Any]:
        out = []
        for uid in sorted(ids):
            user = self.world.user_by_id(uid)
            if user is not None:
                out.append(self.tl_user(user, viewer))
        return out

    @staticmethod
    def tl_markup(msg: Message) -> Any:
        if msg.buttons is None:
            return None
        rows = []
        for row in msg.buttons:
            buttons = []
            for b in row:
                kind: Any
                if b.url is not None:
                    kind = types.InlineButtonTypeUrl(url=b.url)
                else:
                    kind = types.InlineButtonTypeCallback(data=b.data or b"")
                buttons.append(types.KeyboardInlineButton(text=b.text, type=kind))
            rows.append(types.KeyboardInlineButtonRow(buttons=buttons))
        return types.ReplyInlineMarkup(rows=rows)

    def tl_message(self, msg: Message) -> Any:
        return types.Message(
            id=msg.id,
            peer_id=types.PeerUser(msg.peer_id),
            date=msg.date,
            message=msg.text,
            out=msg.out,
            from_id=types.PeerUser(msg.from_id),
            reply_to=types.MessageReplyHeader(reply_to_msg_id=msg.reply_to)
            if msg.reply_to
            else None,
            reply_markup=self.tl_markup(msg),
            edit_date=msg.edit_date,
        )

    def push_edit(self, msg: Message, pts: int) -> None:
        """Deliver an edited message (one owner's copy, edit ``pts``) to the owner's clients."""
        viewer = self.world.user_by_id(msg.owner_id)
        if viewer is None:
            return
        update = types.Updates(
            updates=[types.UpdateEditMessage(message=self.tl_message(msg), pts=pts, pts_count=1)],
            users=self.tl_users({msg.from_id, msg.peer_id, msg.owner_id}, viewer),
            chats=[],
            date=self.now(),
            seq=0,
        )
        self.sandbox.push(msg.owner_id, update)

    def push_delete(self, owner_id: int, ids: list[int], pts: int) -> None:
        """Deliver updateDeleteMessages to the owner's live clients."""
        update = types.Updates(
            updates=[types.UpdateDeleteMessages(messages=ids, pts=pts, pts_count=len(ids))],
            users=[],
            chats=[],
            date=self.now(),
            seq=0,
        )
        self.sandbox.push(owner_id, update)

    def resolve_peer(self, peer: Any, me: User) -> User:
        """InputPeer/InputUser to a User, checking the access hash."""
        if isinstance(peer, types.InputPeerSelf | types.InputUserSelf):
            return me
        if isinstance(peer, types.InputPeerUser | types.InputUser):
            user: User | None = self.world.user_by_id(peer.user_id)
            if user is None or user.access_hash != peer.access_hash:
                raise RpcError(400, "PEER_ID_INVALID")
            return user
        if isinstance(peer, types.InputPeerUserFromMessage | types.InputUserFromMessage):
            user = self.world.user_by_id(peer.user_id)
            if user is None:
                raise RpcError(400, "PEER_ID_INVALID")
            return user
        raise RpcError(400, "PEER_ID_INVALID")

    def push_new_message(self, msg: Message, exclude: Connection | None = None) -> None:
        """Deliver ``msg`` (one owner's copy) to the owner's live connections but ``exclude``."""
        viewer = self.world.user_by_id(msg.owner_id)
        if viewer is None:
            return
        update = types.Updates(
            updates=[
                types.UpdateNewMessage(message=self.tl_message(msg), pts=msg.pts, pts_count=1)
            ],
            users=self.tl_users({msg.from_id, msg.peer_id, msg.owner_id}, viewer),
            chats=[],
            date=msg.date,
            seq=0,
        )
        self.sandbox.push(msg.owner_id, update, exclude)

    # --- dispatch ----------------------------------------------------------------------

    async def dispatch(self, conn: Connection, request: Any) -> Any:
        if not isinstance(request, _NO_AUTH) and self.user_of(conn) is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        name = "on_" + type(request).__module__.rsplit(".", 1)[-1] + "_" + type(request).__name__
        handler = getattr(self, name, None)
        if handler is None:
            raise RpcError(400, "METHOD_NOT_SUPPORTED")
        try:
            result = handler(conn, request)
            if hasattr(result, "__await__"):
                result = await result
        except WorldError as exc:
            raise RpcError(400, exc.name) from exc
        return result

    # --- wrappers ----------------------------------------------------------------------

    async def on_functions_InvokeWithLayerRequest(self, conn: Connection, req: Any) -> Any:
        conn.layer = req.layer
        return await self.dispatch(conn, req.query)

    async def on_functions_InitConnectionRequest(self, conn: Connection, req: Any) -> Any:
        self.world.set_key_client(
            conn.key_id,
            req.device_model,
            "Telethon" if "Telethon" in req.app_version else "",
            req.system_version,
            req.app_version,
            req.api_id,
            conn.ip,
            self.now(),
        )
        return await self.dispatch(conn, req.query)

    async def on_functions_InvokeWithoutUpdatesRequest(self, conn: Connection, req: Any) -> Any:
        return await self.dispatch(conn, req.query)

    async def on_functions_InvokeAfterMsgRequest(self, conn: Connection, req: Any) -> Any:
        return await self.dispatch(conn, req.query)

    # --- help --------------------------------------------------------------------------

    def on_help_GetConfigRequest(self, conn: Connection, req: Any) -> Any:
        now = self.now()
        host, port = self.sandbox.advertised_address
        return types.Config(
            date=now,
            expires=now + 3600,
            test_mode=False,
            this_dc=DC_ID,
            dc_options=[types.DcOption(id=DC_ID, ip_address=host, port=port, static=True)],
            dc_txt_domain_name="sandbox.invalid",
            chat_size_max=200,
            megagroup_size_max=200000,
            forwarded_count_max=100,
            online_update_period_ms=210000,
            offline_blur_timeout_ms=5000,
            offline_idle_timeout_ms=30000,
            online_cloud_timeout_ms=300000,
            notify_cloud_delay_ms=30000,
            notify_default_delay_ms=1500,
            push_chat_period_ms=60000,
            push_chat_limit=2,
            edit_time_limit=172800,
            revoke_time_limit=2147483647,
            revoke_pm_time_limit=2147483647,
            rating_e_decay=2419200,
            stickers_recent_limit=200,
            channels_read_media_period=604800,
            call_receive_timeout_ms=CALL_RECEIVE_TIMEOUT_MS,
            call_ring_timeout_ms=CALL_RING_TIMEOUT_MS,
            call_connect_timeout_ms=CALL_CONNECT_TIMEOUT_MS,
            call_packet_timeout_ms=CALL_PACKET_TIMEOUT_MS,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=DC_ID,
        )

    def on_help_GetNearestDcRequest(self, conn: Connection, req: Any) -> Any:
        return types.NearestDc(country="ZZ", this_dc=DC_ID, nearest_dc=DC_ID)

    # --- updates -----------------------------------------------------------------------

    def on_updates_GetStateRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        return types.updates.State(pts=me.pts, qts=0, date=self.now(), seq=0, unread_count=0)

    def on_updates_GetDifferenceRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        if req.pts >= me.pts:
            return types.updates.DifferenceEmpty(date=self.now(), seq=0)
        msgs, dels = self.world.difference(me.id, req.pts)
        ids: set[int] = {me.id}
        for m in msgs:
            ids.update((m.from_id, m.peer_id))
        others: list[Any] = [
            types.UpdateDeleteMessages(messages=d_ids, pts=pts, pts_count=count)
            for pts, count, d_ids in dels
        ]
        others.extend(
            types.UpdateEditMessage(message=self.tl_message(m), pts=pts, pts_count=1)
            for m, pts in self.world.edits_since(me.id, req.pts)
        )
        others.sort(key=lambda u: u.pts)
        return types.updates.Difference(
            new_messages=[self.tl_message(m) for m in msgs],
            new_encrypted_messages=[],
            other_updates=others,
            chats=[],
            users=self.tl_users(ids, me),
            state=types.updates.State(pts=me.pts, qts=0, date=self.now(), seq=0, unread_count=0),
        )

    # --- users -------------------------------------------------------------------------

    def on_users_GetUsersRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        out = []
        for peer in req.id:
            try:
                out.append(self.tl_user(self.resolve_peer(peer, me), me))
            except RpcError:
                continue
        return out

    def on_users_GetFullUserRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        user = self.resolve_peer(req.id, me)
        full = types.UserFull(
            id=user.id,
            settings=types.PeerSettings(),
            notify_settings=types.PeerNotifySettings(),
            common_chats_count=0,
            phone_calls_available=not user.is_bot,
            about=None,
        )
        return types.users.UserFull(full_user=full, chats=[], users=[self.tl_user(user, me)])

    # --- sign-in -----------------------------------------------------------------------

    @staticmethod
    def _phone(raw: str) -> str:
        phone = raw.strip().lstrip("+").replace(" ", "").replace("-", "")
        if not phone.isdigit() or not 5 <= len(phone) <= 15:
            raise RpcError(400, "PHONE_NUMBER_INVALID")
        return phone

    def on_auth_SendCodeRequest(self, conn: Connection, req: Any) -> Any:
        phone = self._phone(req.phone_number)
        if req.api_id <= 0 or not req.api_hash:
            raise RpcError(400, "API_ID_INVALID")
        now = self.now()
        recent = self.world.codes_sent_since(phone, now - FLOOD_WINDOW)
        if len(recent) >= FLOOD_CODES:
            raise RpcError(420, f"FLOOD_WAIT_{max(1, recent[0] + FLOOD_WINDOW - now)}")
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_LENGTH))
        phone_code_hash = self.world.add_login_code(phone, code, now, self.sandbox.code_ttl)
        if self.sandbox.on_login_code is not None:
            self.sandbox.on_login_code(phone, code)
        user = self.world.user_by_phone(phone)
        if user is not None:
            _, copy = self.world.send_message(
                SERVICE_USER_ID,
                user.id,
                f"Login code: {code}. Do not give this code to anyone.",
                now,
            )
            if copy is not None:
                self.push_new_message(copy)
            kind: Any = types.auth.SentCodeTypeApp(length=CODE_LENGTH)
        else:
            kind = types.auth.SentCodeTypeSms(length=CODE_LENGTH)
        return types.auth.SentCode(type=kind, phone_code_hash=phone_code_hash, timeout=60)

    def _check_code(self, phone: str, phone_code_hash: str, code: str | None) -> None:
        record = self.world.login_code(phone_code_hash)
        if record is None or record.phone != phone:
            raise RpcError(
                400, "PHONE_CODE_HASH_EMPTY" if not phone_code_hash else "PHONE_CODE_EXPIRED"
            )
        if record.used or record.expires <= self.now():
            raise RpcError(400, "PHONE_CODE_EXPIRED")
        if not code:
            raise RpcError(400, "PHONE_CODE_EMPTY")
        if code != record.code:
            raise RpcError(400, "PHONE_CODE_INVALID")
        self.world.use_login_code(phone_code_hash)

    def _authorize(self, conn: Connection, user: User) -> Any:
        if user.has_password:
            self.world.bind_key(conn.key_id, None, pending_user_id=user.id)
            raise RpcError(401, "SESSION_PASSWORD_NEEDED")
        self.world.bind_key(conn.key_id, user.id)
        return types.auth.Authorization(user=self.tl_user(user, user))

    def on_auth_SignInRequest(self, conn: Connection, req: Any) -> Any:
        phone = self._phone(req.phone_number)
        self._check_code(phone, req.phone_code_hash, req.phone_code)
        user = self.world.user_by_phone(phone)
        if user is None:
            return types.auth.AuthorizationSignUpRequired()
        return self._authorize(conn, user)

    def on_auth_SignUpRequest(self, conn: Connection, req: Any) -> Any:
        phone = self._phone(req.phone_number)
        record = self.world.login_code(req.phone_code_hash)
        if record is None or record.phone != phone or record.expires <= self.now():
            raise RpcError(400, "PHONE_CODE_EXPIRED")
        if not record.used:
            raise RpcError(400, "PHONE_CODE_INVALID")
        if self.world.user_by_phone(phone) is not None:
            raise RpcError(400, "PHONE_NUMBER_OCCUPIED")
        first = req.first_name.strip()
        if not first or len(first) > 64:
            raise RpcError(400, "FIRSTNAME_INVALID")
        user = self.world.create_user(phone, first, self.now(), last_name=req.last_name or "")
        return self._authorize(conn, user)

    def on_auth_LogOutRequest(self, conn: Connection, req: Any) -> Any:
        if self.user_of(conn) is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        self.world.bind_key(conn.key_id, None)
        return types.auth.LoggedOut()

    # --- QR login (https://core.telegram.org/api/qr-login) ----------------------------------

    def on_auth_ExportLoginTokenRequest(self, conn: Connection, req: Any) -> Any:
        now = self.now()
        for token, entry in list(self._login_tokens.items()):
            if entry.key_id != conn.key_id:
                continue
            del self._login_tokens[token]
            if entry.accepted_by is not None:
                user = self.world.user_by_id(entry.accepted_by)
                if user is not None:
                    return types.auth.LoginTokenSuccess(authorization=self._authorize(conn, user))
        for token in [t for t, e in self._login_tokens.items() if e.expires <= now]:
            del self._login_tokens[token]
        token = os.urandom(32)
        self._login_tokens[token] = _LoginToken(conn.key_id, now + LOGIN_TOKEN_TTL)
        return types.auth.LoginToken(expires=now + LOGIN_TOKEN_TTL, token=token)

    def accept_login_token(self, user: User, token: bytes) -> int:
        """Accept a QR login token as ``user``; returns the waiting auth key id."""
        entry = self._login_tokens.get(token)
        if entry is None or entry.expires <= self.now():
            raise RpcError(400, "AUTH_TOKEN_EXPIRED" if entry else "AUTH_TOKEN_INVALID")
        if entry.accepted_by is not None:
            raise RpcError(400, "AUTH_TOKEN_ALREADY_ACCEPTED")
        entry.accepted_by = user.id
        update = types.UpdateShort(update=types.UpdateLoginToken(), date=self.now())
        for other in list(self.sandbox.server.connections):
            if other.key_id == entry.key_id and other.session_id is not None:
                other.send_update(update)
        return entry.key_id

    def on_auth_AcceptLoginTokenRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        key_id = self.accept_login_token(me, req.token)
        rec = self.world.auth_key(key_id)
        assert rec is not None
        return types.Authorization(
            hash=rec.hash,
            device_model=rec.device_model,
            platform=rec.platform,
            system_version=rec.system_version,
            api_id=rec.api_id,
            app_name="sandbox client",
            app_version=rec.app_version,
            date_created=rec.created,
            date_active=rec.active,
            ip=rec.ip,
            country="ZZ",
            region="",
        )

    # --- two-step verification ---------------------------------------------------------

    def _pending_user(self, conn: Connection) -> User:
        record = self.world.auth_key(conn.key_id)
        uid = None
        if record is not None:
            uid = record.user_id or record.pending_user_id
        user = self.world.user_by_id(uid) if uid is not None else None
        if user is None:
            raise RpcError(401, "AUTH_KEY_UNREGISTERED")
        result: User = user
        return result

    def on_account_GetPasswordRequest(self, conn: Connection, req: Any) -> Any:
        user = self._pending_user(conn)
        new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=os.urandom(32),
            salt2=os.urandom(16),
            g=crypto.DH_G,
            p=crypto.int_to_256(crypto.DH_PRIME),
        )
        secure = types.SecurePasswordKdfAlgoSHA512(salt=os.urandom(16))
        params = self.world.password_params(user.id)
        if params is None:
            return types.account.Password(
                new_algo=new_algo,
                new_secure_algo=secure,
                secure_random=os.urandom(32),
            )
        salt1, salt2, verifier = params
        b = int.from_bytes(os.urandom(256), "big")
        srp_id = secrets.randbits(63)
        now = self.now()
        for stale in [k for k, v in self._srp.items() if v.expires <= now]:
            del self._srp[stale]
        self._srp[srp_id] = _SrpSession(user.id, b, self.now() + SRP_TTL)
        return types.account.Password(
            new_algo=new_algo,
            new_secure_algo=secure,
            secure_random=os.urandom(32),
            has_recovery=user.password_email is not None,
            has_password=True,
            current_algo=types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
                salt1=salt1, salt2=salt2, g=crypto.DH_G, p=crypto.int_to_256(crypto.DH_PRIME)
            ),
            srp_B=crypto.srp_server_b(verifier, b),
            srp_id=srp_id,
            hint=user.password_hint,
        )

    def on_auth_CheckPasswordRequest(self, conn: Connection, req: Any) -> Any:
        user = self._pending_user(conn)
        check = req.password
        if not isinstance(check, types.InputCheckPasswordSRP):
            raise RpcError(400, "PASSWORD_HASH_INVALID")
        session = self._srp.pop(check.srp_id, None)
        if session is None or session.user_id != user.id or session.expires <= self.now():
            raise RpcError(400, "SRP_ID_INVALID")
        params = self.world.password_params(user.id)
        if params is None:
            raise RpcError(400, "PASSWORD_EMPTY")
        salt1, salt2, verifier = params
        if not crypto.srp_check(verifier, session.b, salt1, salt2, check.A, check.M1):
            raise RpcError(400, "PASSWORD_HASH_INVALID")
        self.world.bind_key(conn.key_id, user.id)
        return types.auth.Authorization(user=self.tl_user(user, user))

    def on_auth_RequestPasswordRecoveryRequest(self, conn: Connection, req: Any) -> Any:
        user = self._pending_user(conn)
        if not user.has_password:
            raise RpcError(400, "PASSWORD_EMPTY")
        if user.password_email is None:
            raise RpcError(400, "PASSWORD_RECOVERY_NA")
        code = "".join(secrets.choice("0123456789") for _ in range(6))
        now = self.now()
        self.world.set_recovery_code(user.id, code, now + RECOVERY_TTL)
        self.world.send_email(
            user.password_email,
            "Telegram password recovery",
            f"Your password recovery code is {code}.",
            code,
            now,
        )
        name, _, domain = user.password_email.partition("@")
        return types.auth.PasswordRecovery(email_pattern=f"{name[:1]}***@{domain}")

    def on_auth_CheckRecoveryPasswordRequest(self, conn: Connection, req: Any) -> Any:
        user = self._pending_user(conn)
        stored = self.world.recovery_code(user.id)
        if stored is None or stored[1] <= self.now():
            raise RpcError(400, "PASSWORD_RECOVERY_EXPIRED")
        if req.code != stored[0]:
            raise RpcError(400, "CODE_INVALID")
        return True

    def on_auth_RecoverPasswordRequest(self, conn: Connection, req: Any) -> Any:
        user = self._pending_user(conn)
        stored = self.world.recovery_code(user.id)
        if stored is None or stored[1] <= self.now():
            raise RpcError(400, "CODE_EMPTY" if stored is None else "PASSWORD_RECOVERY_EXPIRED")
        if req.code != stored[0]:
            raise RpcError(400, "CODE_INVALID")
        self.world.clear_recovery_code(user.id)
        self.world.set_password(user.id, b"", b"", None, None, None)
        self.world.bind_key(conn.key_id, user.id)
        fresh = self.world.user_by_id(user.id)
        return types.auth.Authorization(user=self.tl_user(fresh, fresh))

    # --- account -----------------------------------------------------------------------

    def on_account_GetAuthorizationsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        out = []
        for rec in self.world.authorizations(me.id):
            out.append(
                types.Authorization(
                    hash=0 if rec.key_id == _signed(conn.key_id) else rec.hash,
                    current=rec.key_id == _signed(conn.key_id),
                    device_model=rec.device_model,
                    platform=rec.platform,
                    system_version=rec.system_version,
                    api_id=rec.api_id,
                    app_name="sandbox client",
                    app_version=rec.app_version,
                    date_created=rec.created,
                    date_active=rec.active,
                    ip=rec.ip,
                    country="ZZ",
                    region="",
                    call_requests_disabled=rec.calls_disabled,
                )
            )
        return types.account.Authorizations(authorization_ttl_days=180, authorizations=out)

    def on_account_ResetAuthorizationRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        if req.hash == 0:
            raise RpcError(406, "FRESH_RESET_AUTHORISATION_FORBIDDEN")
        key_id = self.world.reset_authorization(me.id, req.hash)
        if key_id is None:
            raise RpcError(400, "HASH_INVALID")
        return True

    def on_account_ChangeAuthorizationSettingsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        for rec in self.world.authorizations(me.id):
            current = rec.key_id == _signed(conn.key_id)
            if (req.hash == 0 and current) or rec.hash == req.hash:
                if req.call_requests_disabled is not None:
                    self.world.set_calls_disabled(
                        rec.key_id & ((1 << 64) - 1), req.call_requests_disabled
                    )
                return True
        raise RpcError(400, "HASH_INVALID")

    def _privacy_key(self, key: Any) -> tuple[str, Any]:
        entry = _PRIVACY_KEYS.get(type(key))
        if entry is None:
            raise RpcError(400, "PRIVACY_KEY_INVALID")
        return entry

    def _privacy_rules(self, me: User, name: str) -> Any:
        rules: list[Any] = []
        ids: set[int] = set()
        for r in self.world.privacy(me.id, name):
            kind = r["kind"]
            if kind == "allow_all":
                rules.append(types.PrivacyValueAllowAll())
            elif kind == "allow_contacts":
                rules.append(types.PrivacyValueAllowContacts())
            elif kind == "disallow_all":
                rules.append(types.PrivacyValueDisallowAll())
            elif kind == "disallow_contacts":
                rules.append(types.PrivacyValueDisallowContacts())
            elif kind == "allow_users":
                rules.append(types.PrivacyValueAllowUsers(users=r["users"]))
                ids.update(r["users"])
            elif kind == "disallow_users":
                rules.append(types.PrivacyValueDisallowUsers(users=r["users"]))
                ids.update(r["users"])
        return types.account.PrivacyRules(rules=rules, chats=[], users=self.tl_users(ids, me))

    def on_account_SetPrivacyRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        name, _ = self._privacy_key(req.key)
        stored: list[dict[str, Any]] = []
        for rule in req.rules:
            if isinstance(rule, types.InputPrivacyValueAllowAll):
                stored.append({"kind": "allow_all"})
            elif isinstance(rule, types.InputPrivacyValueAllowContacts):
                stored.append({"kind": "allow_contacts"})
            elif isinstance(rule, types.InputPrivacyValueDisallowAll):
                stored.append({"kind": "disallow_all"})
            elif isinstance(rule, types.InputPrivacyValueDisallowContacts):
                stored.append({"kind": "disallow_contacts"})
            elif isinstance(
                rule, types.InputPrivacyValueAllowUsers | types.InputPrivacyValueDisallowUsers
            ):
                kind = (
                    "allow_users"
                    if isinstance(rule, types.InputPrivacyValueAllowUsers)
                    else "disallow_users"
                )
                stored.append(
                    {"kind": kind, "users": [self.resolve_peer(u, me).id for u in rule.users]}
                )
            else:
                raise RpcError(400, "PRIVACY_VALUE_INVALID")
        self.world.set_privacy(me.id, name, stored)
        return self._privacy_rules(me, name)

    def on_account_GetPrivacyRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        name, _ = self._privacy_key(req.key)
        return self._privacy_rules(me, name)

    # --- messages ----------------------------------------------------------------------

    @staticmethod
    def _buttons(markup: Any) -> tuple[tuple[Button, ...], ...] | None:
        if markup is None:
            return None
        if not isinstance(markup, types.ReplyInlineMarkup):
            return None
        rows = []
        for row in markup.rows:
            out = []
            for b in row.buttons:
                kind = getattr(b, "type", None)
                if isinstance(kind, types.InlineButtonTypeCallback):
                    out.append(Button(text=b.text, data=kind.data))
                elif isinstance(kind, types.InlineButtonTypeUrl):
                    out.append(Button(text=b.text, url=kind.url))
                else:
                    raise RpcError(400, "BUTTON_TYPE_INVALID")
            rows.append(tuple(out))
        return tuple(rows)

    def on_messages_SendMessageRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        peer = self.resolve_peer(req.peer, me)
        text = req.message
        if not text.strip():
            raise RpcError(400, "MESSAGE_EMPTY")
        if len(text) > 4096:
            raise RpcError(400, "MESSAGE_TOO_LONG")
        reply_to = None
        if isinstance(req.reply_to, types.InputReplyToMessage):
            reply_to = req.reply_to.reply_to_msg_id
        mine, theirs = self.world.send_message(
            me.id,
            peer.id,
            text,
            self.now(),
            reply_to=reply_to,
            buttons=self._buttons(req.reply_markup),
        )
        if theirs is not None:
            self.push_new_message(theirs)
        self.push_new_message(mine, exclude=conn)
        if mine.buttons is not None:
            return types.Updates(
                updates=[
                    types.UpdateMessageID(id=mine.id, random_id=req.random_id),
                    types.UpdateNewMessage(
                        message=self.tl_message(mine), pts=mine.pts, pts_count=1
                    ),
                ],
                users=self.tl_users({me.id, peer.id}, me),
                chats=[],
                date=mine.date,
                seq=0,
            )
        return types.UpdateShortSentMessage(
            id=mine.id, pts=mine.pts, pts_count=1, date=mine.date, out=True
        )

    async def on_messages_GetBotCallbackAnswerRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        bot = self.resolve_peer(req.peer, me)
        if not bot.is_bot:
            raise RpcError(400, "BOT_INVALID")
        if req.data is None:
            raise RpcError(400, "DATA_INVALID")
        query = await self.sandbox.press_button(me, req.msg_id, req.data, BOT_ANSWER_TIMEOUT)
        if not query.answered:
            raise RpcError(400, "BOT_RESPONSE_TIMEOUT")
        return types.messages.BotCallbackAnswer(
            cache_time=0,
            alert=query.show_alert,
            has_url=query.url is not None,
            message=query.answer_text,
            url=query.url,
        )

    def _messages(self, me: User, msgs: list[Message]) -> Any:
        ids: set[int] = {me.id}
        for m in msgs:
            ids.update((m.from_id, m.peer_id))
        return types.messages.Messages(
            messages=[self.tl_message(m) for m in msgs],
            topics=[],
            chats=[],
            users=self.tl_users(ids, me),
        )

    def on_messages_GetHistoryRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        peer = self.resolve_peer(req.peer, me)
        limit = max(1, min(req.limit or 100, 100))
        return self._messages(me, self.world.history(me.id, peer.id, limit, req.offset_id))

    def on_messages_GetMessagesRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        msgs = []
        for item in req.id:
            if isinstance(item, types.InputMessageID):
                m = self.world.message(me.id, item.id)
                if m is not None:
                    msgs.append(m)
        return self._messages(me, msgs)

    def on_messages_DeleteMessagesRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        ids = [i for i in req.id if isinstance(i, int)]
        deleted, pts = self.world.delete_messages(me.id, ids)
        return types.messages.AffectedMessages(pts=pts, pts_count=len(deleted))

    def on_messages_GetDialogsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        tops = self.world.dialogs(me.id, max(1, min(req.limit or 100, 100)))
        dialogs = [
            types.Dialog(
                peer=types.PeerUser(m.peer_id),
                top_message=m.id,
                read_inbox_max_id=m.id,
                read_outbox_max_id=m.id,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=types.PeerNotifySettings(),
            )
            for m in tops
        ]
        ids: set[int] = {me.id} | {m.peer_id for m in tops}
        return types.messages.Dialogs(
            dialogs=dialogs,
            messages=[self.tl_message(m) for m in tops],
            chats=[],
            users=self.tl_users(ids, me),
        )

    # --- contacts ----------------------------------------------------------------------

    def on_contacts_ResolveUsernameRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        username = req.username.lstrip("@")
        if not username or not all(c.isalnum() or c == "_" for c in username):
            raise RpcError(400, "USERNAME_INVALID")
        user = self.world.user_by_username(username)
        if user is None:
            raise RpcError(400, "USERNAME_NOT_OCCUPIED")
        return types.contacts.ResolvedPeer(
            peer=types.PeerUser(user.id), chats=[], users=[self.tl_user(user, me)]
        )

    def on_contacts_ImportContactsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        imported = []
        users = []
        for contact in req.contacts:
            try:
                phone = self._phone(contact.phone)
            except RpcError:
                continue
            user = self.world.user_by_phone(phone)
            if user is None or user.id == me.id:
                continue
            self.world.add_contact(me.id, user.id, contact.first_name, contact.last_name)
            imported.append(types.ImportedContact(user_id=user.id, client_id=contact.client_id))
            users.append(self.tl_user(user, me))
        return types.contacts.ImportedContacts(
            imported=imported, popular_invites=[], retry_contacts=[], users=users
        )

    def on_contacts_GetContactsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        ids = self.world.contacts(me.id)
        return types.contacts.Contacts(
            contacts=[
                types.Contact(user_id=uid, mutual=self.world.is_contact(uid, me.id)) for uid in ids
            ],
            saved_count=len(ids),
            users=self.tl_users(set(ids), me),
        )


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
