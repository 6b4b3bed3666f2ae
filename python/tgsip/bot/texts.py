"""Message texts built from records (pure functions, plain text: no parse mode)."""

from __future__ import annotations

from collections.abc import Sequence

from tgsip.bot.keyboards import KIND_NAMES, line_title, session_title
from tgsip.bot.labels import PRODUCT, TRANSPORT_NAMES, label
from tgsip.bot.services import LineStateView
from tgsip.config.lines import LineKind, SipLine
from tgsip.config.sessions import SessionRecord


def session_list(sessions: Sequence[SessionRecord], can_connect: bool) -> str:
    if not sessions:
        if can_connect:
            return f"No sessions yet. Press {label('SESSION_LOGIN')} to connect a Telegram account."
        return "You administer no sessions."
    return f"Your {PRODUCT} sessions ({len(sessions)}). Choose one to change its settings."


def session_card(rec: SessionRecord, online: bool, n_lines: int) -> str:
    lines = [
        f"Session {session_title(rec)}",
        f"Phone: +{rec.phone.lstrip('+')}",
        f"State: {rec.state.value}{' · online' if online else ''}",
        f"SIP lines: {n_lines}",
    ]
    if rec.last_error:
        lines.append(f"Last error: {rec.last_error}")
    if rec.admin_id is None:
        lines.append("Administrator: none (the gateway's operators manage it)")
    return "\n".join(lines)


def line_card(line: SipLine, state: LineStateView | None, sip_address: str) -> str:
    out = [f"SIP line {line_title(line)}"]
    if line.kind is LineKind.PBX_TO_GATEWAY:
        out.append(f"The PBX registers to {sip_address} ({TRANSPORT_NAMES[line.transport]}).")
    elif line.kind is LineKind.GATEWAY_TO_PBX:
        out.append(
            "The gateway registers to the PBX's Domain (via Proxy when set); the PBX must accept "
            f"SIP from {sip_address.rsplit(':', 1)[0]}."
        )
    else:
        out.append(f"No registration; the PBX sends calls to {sip_address}.")
    missing = line.missing_params()
    if missing:
        out.append(f"⚠️ Invalid parameters ({', '.join(missing)})")
    if state is None:
        out.append("State: not running")
    else:
        if state.registered is not None:
            out.append(f"Registered: {'yes' if state.registered else 'no'}")
        out.append(f"Active calls: {state.active_calls}")
        if state.last_error:
            out.append(f"Last error: {state.last_error}")
    return "\n".join(out)


def account(line: SipLine, sip_address: str) -> str:
    """Show Account: what to enter on the PBX (contains the password: sent on request only)."""
    return "\n".join(
        [
            f"Account of SIP line #{line.id} ({KIND_NAMES[line.kind]})",
            f"Server: {sip_address}",
            f"Transport: {TRANSPORT_NAMES[line.transport]}",
            f"Login: {line.login}",
            f"Password: {line.password}",
            "Configure a trunk with registration on the PBX with these values.",
        ]
    )
