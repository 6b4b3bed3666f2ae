"""Sign-in by code, sign-up and two-step verification with unmodified Telethon."""

from __future__ import annotations

import asyncio

import pytest
from telethon import errors, functions, types

from tgsip.sandbox import Sandbox, WorldError

from .conftest import TIMEOUT, ClientFactory, login


async def test_sign_in_by_code(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = sandbox.create_user("15550001", "Alice", username="alice")
    client = await make_client()
    assert not await asyncio.wait_for(client.is_user_authorized(), TIMEOUT)
    me = await login(client, sandbox, "+15550001")
    assert me.id == alice.id
    assert me.first_name == "Alice"
    got = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert got.id == alice.id
    assert got.username == "alice"
    # The code also arrived as a message from the service account 777000.
    history = alice.history(777000)
    assert history
    assert sandbox.last_login_code("15550001") in history[0].text


async def test_sign_up_new_number(sandbox: Sandbox, make_client: ClientFactory) -> None:
    client = await make_client()
    sent = await asyncio.wait_for(client.send_code_request("15550002"), TIMEOUT)
    code = sandbox.last_login_code("15550002")
    assert code is not None
    with pytest.raises(errors.PhoneNumberUnoccupiedError):
        await asyncio.wait_for(client.sign_in("15550002", code), TIMEOUT)
    auth = await asyncio.wait_for(
        client(
            functions.auth.SignUpRequest(
                phone_number="15550002",
                phone_code_hash=sent.phone_code_hash,
                first_name="Newcomer",
                last_name="",
            )
        ),
        TIMEOUT,
    )
    assert isinstance(auth, types.auth.Authorization)
    assert sandbox.user_by_phone("15550002") is not None
    me = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert me.first_name == "Newcomer"


async def test_wrong_and_expired_codes(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sandbox.create_user("15550003", "Carol")
    client = await make_client()
    await asyncio.wait_for(client.send_code_request("15550003"), TIMEOUT)
    code = sandbox.last_login_code("15550003")
    assert code is not None
    wrong = "00000" if code != "00000" else "11111"
    with pytest.raises(errors.PhoneCodeInvalidError):
        await asyncio.wait_for(client.sign_in("15550003", wrong), TIMEOUT)
    sandbox.advance(sandbox.code_ttl + 1)
    with pytest.raises(errors.PhoneCodeExpiredError):
        await asyncio.wait_for(client.sign_in("15550003", code), TIMEOUT)
    with pytest.raises(errors.PhoneNumberInvalidError):
        await asyncio.wait_for(
            client(
                functions.auth.SendCodeRequest(
                    "12ab", client.api_id, client.api_hash, types.CodeSettings()
                )
            ),
            TIMEOUT,
        )
    assert not await asyncio.wait_for(client.is_user_authorized(), TIMEOUT)


async def test_flood_wait_on_code_requests(sandbox: Sandbox, make_client: ClientFactory) -> None:
    client = await make_client()
    request = functions.auth.SendCodeRequest(
        "15550009", client.api_id, client.api_hash, types.CodeSettings()
    )
    for _ in range(5):
        await asyncio.wait_for(client(request), TIMEOUT)
    with pytest.raises(errors.FloodWaitError) as info:
        await asyncio.wait_for(client(request), TIMEOUT)
    assert 0 < info.value.seconds <= 60


async def test_two_step_password(sandbox: Sandbox, make_client: ClientFactory) -> None:
    dave = sandbox.create_user("15550004", "Dave")
    sandbox.set_password(dave, "correct horse", hint="horse")
    client = await make_client()
    with pytest.raises(errors.SessionPasswordNeededError):
        await login(client, sandbox, "15550004")
    with pytest.raises(errors.PasswordHashInvalidError):
        await asyncio.wait_for(client.sign_in(password="wrong horse"), TIMEOUT)
    me = await asyncio.wait_for(client.sign_in(password="correct horse"), TIMEOUT)
    assert me.id == dave.id
    assert await asyncio.wait_for(client.is_user_authorized(), TIMEOUT)


async def test_password_recovery_by_email(sandbox: Sandbox, make_client: ClientFactory) -> None:
    erin = sandbox.create_user("15550005", "Erin")
    sandbox.set_password(erin, "forgotten", email="erin@example.org")
    frank = sandbox.create_user("15550006", "Frank")
    sandbox.set_password(frank, "also forgotten")
    client = await make_client()
    with pytest.raises(errors.SessionPasswordNeededError):
        await login(client, sandbox, "15550005")
    recovery = await asyncio.wait_for(
        client(functions.auth.RequestPasswordRecoveryRequest()), TIMEOUT
    )
    assert recovery.email_pattern.endswith("@example.org")
    mails = sandbox.emails("erin@example.org")
    assert len(mails) == 1
    with pytest.raises(errors.CodeInvalidError):
        await asyncio.wait_for(client(functions.auth.RecoverPasswordRequest(code="nope")), TIMEOUT)
    auth = await asyncio.wait_for(
        client(functions.auth.RecoverPasswordRequest(code=mails[0].code)), TIMEOUT
    )
    assert auth.user.id == erin.id
    assert not erin.user.has_password

    other = await make_client()
    with pytest.raises(errors.SessionPasswordNeededError):
        await login(other, sandbox, "15550006")
    with pytest.raises(errors.PasswordRecoveryNaError):
        await asyncio.wait_for(other(functions.auth.RequestPasswordRecoveryRequest()), TIMEOUT)


async def test_authorizations_privacy_and_logout(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    sandbox.create_user("15550007", "Gina")
    first = await make_client()
    await login(first, sandbox, "15550007")
    second = await make_client()
    await login(second, sandbox, "15550007")
    auths = await asyncio.wait_for(first(functions.account.GetAuthorizationsRequest()), TIMEOUT)
    assert len(auths.authorizations) == 2
    current = [a for a in auths.authorizations if a.current]
    others = [a for a in auths.authorizations if not a.current]
    assert len(current) == 1
    assert len(others) == 1
    assert await asyncio.wait_for(
        first(
            functions.account.ChangeAuthorizationSettingsRequest(
                hash=0, call_requests_disabled=True
            )
        ),
        TIMEOUT,
    )
    rules = await asyncio.wait_for(
        first(
            functions.account.SetPrivacyRequest(
                key=types.InputPrivacyKeyPhoneCall(),
                rules=[types.InputPrivacyValueAllowContacts()],
            )
        ),
        TIMEOUT,
    )
    assert isinstance(rules.rules[0], types.PrivacyValueAllowContacts)
    got = await asyncio.wait_for(
        first(functions.account.GetPrivacyRequest(key=types.InputPrivacyKeyPhoneCall())), TIMEOUT
    )
    assert isinstance(got.rules[0], types.PrivacyValueAllowContacts)
    assert await asyncio.wait_for(
        first(functions.account.ResetAuthorizationRequest(hash=others[0].hash)), TIMEOUT
    )
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await asyncio.wait_for(
            second(functions.users.GetUsersRequest([types.InputUserSelf()])), TIMEOUT
        )
    assert await asyncio.wait_for(first.log_out(), TIMEOUT)


async def test_code_sent_in_a_chat_expires(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """Anti-phishing: a login code its owner sends in a chat no longer signs in."""
    owner = sandbox.create_user("15550010", "Quinn")
    helper = sandbox.create_user("15550011", "Rita", username="rita")
    logged_in = await make_client()
    await login(logged_in, sandbox, "15550010")
    newcomer = await make_client()
    await asyncio.wait_for(newcomer.send_code_request("15550010"), TIMEOUT)
    code = sandbox.last_login_code("15550010")
    assert code is not None
    await asyncio.wait_for(logged_in.send_message("rita", f"my code is {code}"), TIMEOUT)
    assert helper.history(owner)[0].text.endswith(code)
    with pytest.raises(errors.PhoneCodeExpiredError):
        await asyncio.wait_for(newcomer.sign_in("15550010", code), TIMEOUT)
    # Spaced digits (what the gateway asks for) do not expire a fresh code.
    await asyncio.wait_for(newcomer.send_code_request("15550010"), TIMEOUT)
    fresh = sandbox.last_login_code("15550010")
    assert fresh is not None
    await asyncio.wait_for(logged_in.send_message("rita", " ".join(fresh)), TIMEOUT)
    me = await asyncio.wait_for(newcomer.sign_in("15550010", fresh), TIMEOUT)
    assert me.id == owner.id


async def test_check_recovery_code(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sam = sandbox.create_user("15550012", "Sam")
    sandbox.set_password(sam, "pw", email="sam@example.org")
    client = await make_client()
    with pytest.raises(errors.SessionPasswordNeededError):
        await login(client, sandbox, "15550012")
    await asyncio.wait_for(client(functions.auth.RequestPasswordRecoveryRequest()), TIMEOUT)
    code = sandbox.emails("sam@example.org")[-1].code
    with pytest.raises(errors.CodeInvalidError):
        await asyncio.wait_for(client(functions.auth.CheckRecoveryPasswordRequest("x")), TIMEOUT)
    assert await asyncio.wait_for(
        client(functions.auth.CheckRecoveryPasswordRequest(code)), TIMEOUT
    )
    assert sam.user.has_password  # checking does not consume the code or drop the password


async def test_qr_login(sandbox: Sandbox, make_client: ClientFactory) -> None:
    tess = sandbox.create_user("15550013", "Tess")
    phone = await make_client()
    await login(phone, sandbox, "15550013")
    desktop = await make_client()
    qr = await asyncio.wait_for(desktop.qr_login(), TIMEOUT)
    assert qr.url.startswith("tg://login?token=")
    # The logged-in phone "scans" the code with Telethon's raw API call.
    accepted = await asyncio.wait_for(
        phone(functions.auth.AcceptLoginTokenRequest(qr.token)), TIMEOUT
    )
    assert isinstance(accepted, types.Authorization)
    me = await asyncio.wait_for(qr.wait(TIMEOUT), TIMEOUT)
    assert me.id == tess.id
    # A scripted scan works too, and a token cannot be used twice.
    laptop = await make_client()
    qr2 = await asyncio.wait_for(laptop.qr_login(), TIMEOUT)
    sandbox.accept_login_token(tess, qr2.token)
    with pytest.raises(WorldError):
        sandbox.accept_login_token(tess, qr2.token)
    me = await asyncio.wait_for(qr2.wait(TIMEOUT), TIMEOUT)
    assert me.id == tess.id
