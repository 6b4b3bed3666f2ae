"""Files, media messages, inline bots and account rules of the sandbox (rpc_media), driven by
unmodified Telethon; malformed requests get Telegram's errors."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from telethon import errors, functions, types

from tgsip.sandbox import Sandbox
from tgsip.sandbox.rpc_media import InlineResult
from tgsip.telegram.tgerrors import error_name

from .conftest import TIMEOUT, ClientFactory, login


async def _call(client, request):
    return await asyncio.wait_for(client(request), TIMEOUT)


async def _error(client, request) -> str:
    """Telegram's error name for ``request``, which must fail."""
    try:
        await _call(client, request)
    except errors.RPCError as exc:
        return error_name(exc)
    raise AssertionError(f"{type(request).__name__} did not fail")


async def test_upload_errors(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sandbox.create_user("15554001", "Ann")
    bob = sandbox.create_user("15554002", "Bob", username="bob")
    client = await make_client()
    await login(client, sandbox, "15554001")
    save = functions.upload.SaveFilePartRequest
    assert await _error(client, save(file_id=1, file_part=0, bytes=b"")) == "FILE_PART_EMPTY"
    assert (
        await _error(client, save(file_id=1, file_part=0, bytes=b"x" * (512 * 1024 + 1)))
        == "FILE_PART_SIZE_INVALID"
    )
    assert await _error(client, save(file_id=1, file_part=-1, bytes=b"x")) == "FILE_PART_INVALID"
    peer = await asyncio.wait_for(client.get_input_entity("bob"), TIMEOUT)

    def send(file):
        return functions.messages.SendMediaRequest(
            peer=peer,
            media=types.InputMediaUploadedDocument(file=file, mime_type="audio/ogg", attributes=[]),
            message="",
        )

    # Part 1 of 2 is missing.
    assert await _call(client, save(file_id=2, file_part=0, bytes=b"a" * 1024))
    assert (
        await _error(client, send(types.InputFile(id=2, parts=2, name="a.ogg", md5_checksum="")))
        == "FILE_PARTS_INVALID"
    )
    # A wrong checksum.
    assert await _call(client, save(file_id=3, file_part=0, bytes=b"abc"))
    assert (
        await _error(client, send(types.InputFile(id=3, parts=1, name="a", md5_checksum="0" * 32)))
        == "MD5_CHECKSUM_INVALID"
    )
    # A part not a multiple of 1 KiB before the last one.
    assert await _call(client, save(file_id=4, file_part=0, bytes=b"a" * 1000))
    assert await _call(client, save(file_id=4, file_part=1, bytes=b"b"))
    assert (
        await _error(client, send(types.InputFile(id=4, parts=2, name="a", md5_checksum="")))
        == "FILE_PART_SIZE_INVALID"
    )
    # A good one, as a big file, reaches Bob.
    assert await _call(
        client,
        functions.upload.SaveBigFilePartRequest(
            file_id=5, file_part=0, file_total_parts=2, bytes=b"c" * 1024
        ),
    )
    assert await _call(
        client,
        functions.upload.SaveBigFilePartRequest(
            file_id=5, file_part=1, file_total_parts=2, bytes=b"d"
        ),
    )
    await _call(client, send(types.InputFileBig(id=5, parts=2, name="big.bin")))
    [msg] = bob.history(sandbox.user_by_phone("15554001").id)
    doc = sandbox.api.media_of(bob.id, msg.id)
    assert doc is not None
    assert doc.data == b"c" * 1024 + b"d"
    assert doc.name == "big.bin"
    location = types.InputDocumentFileLocation(
        id=doc.id, access_hash=doc.access_hash, file_reference=b"", thumb_size=""
    )
    assert (
        await _error(
            client, functions.upload.GetFileRequest(location=location, offset=0, limit=100)
        )
        == "LIMIT_INVALID"
    )
    got = await _call(
        client, functions.upload.GetFileRequest(location=location, offset=0, limit=1024)
    )
    assert hashlib.sha256(got.bytes).digest() == hashlib.sha256(b"c" * 1024).digest()
    wrong = types.InputDocumentFileLocation(
        id=doc.id, access_hash=doc.access_hash + 1, file_reference=b"", thumb_size=""
    )
    assert (
        await _error(client, functions.upload.GetFileRequest(location=wrong, offset=0, limit=1024))
        == "FILE_REFERENCE_INVALID"
    )


async def test_inline_bot_errors(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sandbox.create_user("15554011", "Ann")
    sandbox.create_user("15554012", "Bob", username="bob")
    quiet = sandbox.create_bot("quiet_bot", "Quiet")
    crm = sandbox.create_bot("crm_bot", "CRM")
    sandbox.api.set_inline_bot(crm, lambda query, user: [InlineResult("a", "A", f"<{query}>")])
    client = await make_client()
    await login(client, sandbox, "15554011")
    bob = await asyncio.wait_for(client.get_input_entity("bob"), TIMEOUT)
    quiet_in = await asyncio.wait_for(client.get_input_entity("quiet_bot"), TIMEOUT)
    crm_in = await asyncio.wait_for(client.get_input_entity("crm_bot"), TIMEOUT)
    ask = functions.messages.GetInlineBotResultsRequest
    assert (
        await _error(client, ask(bot=quiet_in, peer=bob, query="x", offset=""))
        == "BOT_INLINE_DISABLED"
    )
    results = await _call(client, ask(bot=crm_in, peer=bob, query="q", offset=""))
    assert [r.id for r in results.results] == ["a"]
    assert results.results[0].send_message.message == "<q>"
    post = functions.messages.SendInlineBotResultRequest
    assert (
        await _error(client, post(peer=bob, query_id=results.query_id + 1, id="a"))
        == "QUERY_ID_INVALID"
    )
    assert (
        await _error(client, post(peer=bob, query_id=results.query_id, id="zz"))
        == "RESULT_ID_INVALID"
    )
    await _call(client, post(peer=bob, query_id=results.query_id, id="a"))
    assert quiet.id != crm.id


async def test_banned_number_and_phone_privacy(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    sandbox.create_user("15554021", "Ann")
    bob = sandbox.create_user("15554022", "Bob", username="bob")
    sandbox.api.ban_phone("+1 555 4023")
    client = await make_client()
    with pytest.raises(errors.PhoneNumberBannedError):
        await asyncio.wait_for(client.send_code_request("15554023"), TIMEOUT)
    await login(client, sandbox, "15554021")
    resolved = await _call(client, functions.contacts.ResolveUsernameRequest(username="bob"))
    assert resolved.users[0].phone is None  # default: contacts only
    sandbox.world.set_privacy(bob.id, "phone_number", [{"kind": "allow_all"}])
    resolved = await _call(client, functions.contacts.ResolveUsernameRequest(username="bob"))
    assert resolved.users[0].phone == "15554022"
    ann = sandbox.user_by_phone("15554021")
    sandbox.world.set_privacy(
        bob.id,
        "phone_number",
        [{"kind": "allow_all"}, {"kind": "disallow_users", "users": [ann.id]}],
    )
    resolved = await _call(client, functions.contacts.ResolveUsernameRequest(username="bob"))
    assert resolved.users[0].phone is None
