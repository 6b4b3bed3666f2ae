"""Button labels and fixed texts of the administrator bot.

The labels are the product's (product.md Appendix A) with its brand replaced by ours,
:data:`PRODUCT`. Keys keep the appendix's names so a label can be traced back to the spec.
"""

from __future__ import annotations

from typing import Final

PRODUCT: Final = "tgsip"

LABELS: Final[dict[str, str]] = {
    "ADDRESS_PORT": "Address:port",
    "ADMIN_ASSIGN": "Assign administrator",
    "ARBITRARY_CHECK": "Messages processing",
    "AUTOREPLY": "Autoreply",
    "BACK": "Back",
    "BTN_EMPTY_BOT": "Inline bot",
    "CALLBACK_CHECK": "Callback",
    "CALLER_NAME": "Caller name",
    "CALLER_PHONE": "Caller phone",
    "CANCEL": "Cancel",
    "CONFIGURE_ACCOUNT_ALLOW_EVERYBODY": "Allow calls from all users",
    "CONFIGURE_ACCOUNT_ALLOW_P2P": "Allow P2P calls from everybody",
    "CONFIGURE_ACCOUNT_DISALLOW_GROUPS": "Disallow adding to groups",
    "CONFIGURE_ACCOUNT_OFF_OTHER_SESSIONS_CALLS": "Disable calls on other devices",
    "DELETE": "Delete",
    "DIAL_RULES": "Dial Rules",
    "DOMAIN": "Domain",
    "DTMF_METHODS": "DTMF Methods",
    "FIELD_VALUE": "Field:Value",
    "FORMATS": "Audio Codecs",
    "FW_SHARE_PHONE": "Send phone number",
    "GATEWAY_IN_RESET": "Reset Password",
    "GATEWAY_IN_SHOW": "Show Account",
    "GATEWAY_OUT_NUMBER": "Number on PBX",
    "HELP": "Help",
    "INLINE_QUERY": "Inline query",
    "KEYPAD_IN": "DTMF In",
    "KEYPAD_OUT": "DTMF Out",
    "LINES": "Lines",
    "LINES_CHECK": "Lines",
    "LOGIN": "Login",
    "NEW_IN": f"🆕 PBX→{PRODUCT}",
    "NEW_IP": "🆕 IP⇿IP",
    "NEW_OUT": f"🆕 {PRODUCT}→PBX",
    "NO": "No",
    "PASSWORD": "Password",
    "PRIORITY": "Priority",  # not in Appendix A: product.md 8.1 names the setting
    "REDIAL_CHECK": "Redial",
    "REGISTRAR": "Proxy",
    "REPEAT": "Repeat",
    "SELECT_BOT": "Select bot",
    "SELECT_USER": "Select user",
    "SESSION_BILLER_CHECK": "Use a shared subscription",
    "SESSION_CONFIGURE_ACCOUNT": "Configure Telegram account",
    "SESSION_LOGIN": "Connect",
    "SESSION_LOGOUT": "Disconnect",
    "SETTINGS": "Settings",
    "TG_STORAGE_OFFICIAL": f"✅ {PRODUCT} Sessions Storage",
    "TRUSTED_IPS": "Trusted IPs",
    "UNLINK": "Unlink",
    "YES": "Yes",
}


def label(key: str) -> str:
    """The button text for an Appendix A key (KeyError for a key the bot does not use)."""
    return LABELS[key]


ON: Final = "✅"
OFF: Final = "⬜"
UNKNOWN: Final = "❔"
MAX_VALUE_ON_BUTTON: Final = 24
"""Values shown on a button are cut to this many characters."""


def check(value: bool | None) -> str:
    return UNKNOWN if value is None else (ON if value else OFF)


def shorten(value: str, limit: int = MAX_VALUE_ON_BUTTON) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


TRANSPORT_NAMES: Final = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}

STORAGE_OWN: Final = "🔑 Own storage (PostgreSQL)"
SHARE_PHONE: Final = "📱 " + LABELS["FW_SHARE_PHONE"]
SIP_LINES: Final = "📞 SIP lines"
ADVANCED: Final = "⚙️ Advanced"
REFRESH: Final = "🔄 Refresh"
KEYPAD_ERASE: Final = "⌫"
KEYPAD_SUBMIT: Final = "✅ Send code"
DISCONNECT_KEEP: Final = "Yes, keep SIP lines"
DISCONNECT_CLEAR: Final = "Yes, and clear SIP lines"

HELP_TEXT: Final = (
    f"{PRODUCT} connects a Telegram account (a session) to your PBX over SIP.\n\n"
    "/gateway — your sessions and their settings\n"
    f"{LABELS['SESSION_LOGIN']} — connect a new session account\n"
    "/cancel — stop the current input\n\n"
    "Each button shows its current value; press it to change the value. Wrap regular "
    "expressions in `backticks` so Telegram leaves them alone."
)

CONNECT_ADVICE: Final = (
    "Use a dedicated Telegram account for the gateway: it becomes the source and receiver of "
    "calls, so do not use it for personal calls or chats. The gateway keeps it online.\n\n"
    "Where should the session's authorization be stored? The choice is final: a session "
    "cannot be moved between storages."
)
