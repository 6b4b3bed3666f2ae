"""Caller ID and Caller Name templates (product.md section 8.4).

A template list has one template per line. Placeholders: ``{phone}``, ``{username}``,
``{userid}`` (Caller phone and Caller name) and ``{name}``, ``{name_ascii}`` (Caller name only).
The first line all of whose placeholders have a value for the Telegram user is used; a line
without placeholders always qualifies (a final fallback). ``{{`` and ``}}`` are literal braces.

For PBX->Telegram calls the same Caller phone templates are read backwards
(:func:`parse_called`): each line becomes a pattern (``{phone}`` -> ``\\+?\\d{5,15}``,
``{username}`` -> a Telegram username, ``{userid}`` -> ``\\d{1,20}``) and the first line that
matches the whole called identifier decides what it is.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from anyascii import anyascii

PHONE_FIELDS = frozenset({"phone", "username", "userid"})
NAME_FIELDS = frozenset({"phone", "username", "userid", "name", "name_ascii"})
MAX_TEMPLATES = 16
MAX_TEMPLATE_LEN = 128

DEFAULT_CALLER_PHONE: tuple[str, ...] = ("+{phone}", "0{userid}")
DEFAULT_CALLER_NAME: tuple[str, ...] = ("{name_ascii}",)

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template list was refused; ``str(e)`` is a message fit to show the administrator."""


@dataclass(frozen=True)
class CallerInfo:
    """What the session knows about a Telegram user; empty strings are unknown values."""

    userid: int
    phone: str = ""
    username: str = ""
    first_name: str = ""
    last_name: str = ""

    def values(self) -> dict[str, str]:
        name = " ".join(p for p in (self.first_name, self.last_name) if p).strip()
        return {
            "phone": self.phone.lstrip("+"),
            "username": self.username.lstrip("@"),
            "userid": str(self.userid) if self.userid else "",
            "name": name,
            "name_ascii": ascii_name(name),
        }


def ascii_name(name: str) -> str:
    """``name`` transliterated to printable ASCII (control characters dropped, spaces folded)."""
    text = anyascii(name)
    text = "".join(ch for ch in text if " " <= ch <= "~")
    return " ".join(text.split())


def quote_display_name(name: str) -> str:
    """``name`` as a SIP quoted-string (RFC 3261 section 25.1): quotes and backslashes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fields(template: str) -> list[str]:
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"Template `{template}`: unbalanced braces ({exc})") from exc
    out = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            raise TemplateError(f"Template `{template}`: write placeholders as {{name}} only")
        out.append(field)
    return out


def _strip_backticks(text: str) -> str:
    """Trim one pair of surrounding backticks; a line of backticks only (a fence) is empty."""
    text = text.strip()
    if text and not text.strip("`"):
        return ""
    for fence in ("```", "`"):
        if len(text) >= 2 * len(fence) and text.startswith(fence) and text.endswith(fence):
            return text[len(fence) : -len(fence)].strip()
    return text


def parse_templates(
    text: str | Sequence[str], allowed: frozenset[str] = NAME_FIELDS
) -> tuple[str, ...]:
    """Validate typed templates (one per line); returns the lines to store.

    An empty text is refused (the caller restores the default explicitly). Raises
    TemplateError naming the offending line.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    out = tuple(t for t in (_strip_backticks(line) for line in lines) if t)
    if not out:
        raise TemplateError("Enter at least one template line")
    if len(out) > MAX_TEMPLATES:
        raise TemplateError(f"Too many template lines (at most {MAX_TEMPLATES})")
    for template in out:
        if len(template) > MAX_TEMPLATE_LEN:
            raise TemplateError(f"Template too long (at most {MAX_TEMPLATE_LEN} characters)")
        for field in _fields(template):
            if field not in allowed:
                known = ", ".join("{" + f + "}" for f in sorted(allowed))
                raise TemplateError(
                    f"Template `{template}`: unknown placeholder {{{field}}}; use {known}"
                )
    return out


def render(templates: Sequence[str], values: Mapping[str, str]) -> str | None:
    """The first template all of whose placeholders have non-empty values, filled in.

    None when no line qualifies.
    """
    for template in templates:
        fields = _fields(template)
        if all(values.get(f) for f in fields):
            return template.format_map({f: values[f] for f in fields})
    return None


class CalledKind(StrEnum):
    PHONE = "phone"
    USERNAME = "username"
    USERID = "userid"


@dataclass(frozen=True)
class Called:
    """A called identifier read from a PBX's INVITE."""

    kind: CalledKind
    value: str


_PIECES = {
    "phone": r"(?P<phone>\+?\d{5,15})",
    "username": r"@?(?P<username>[A-Za-z][A-Za-z0-9_]{4,31})",
    "userid": r"(?P<userid>\d{1,20})",
}


def _reverse_pattern(template: str) -> re.Pattern[str] | None:
    parts: list[str] = []
    used: set[str] = set()
    for literal, field, _spec, _conv in _FORMATTER.parse(template):
        parts.append(re.escape(literal))
        if field is None:
            continue
        if field not in _PIECES or field in used:
            return None
        used.add(field)
        parts.append(_PIECES[field])
    if not used:
        return None
    return re.compile("".join(parts))


def parse_called(templates: Sequence[str], called: str) -> Called | None:
    """What a PBX's called identifier names, read with the Caller phone ``templates``.

    Falls back to: leading ``@`` or a letter -> username, otherwise digits (with an optional
    ``+``) -> phone. None when the identifier fits nothing.
    """
    called = called.strip()
    for template in templates:
        try:
            pattern = _reverse_pattern(template)
        except ValueError:
            continue
        if pattern is None:
            continue
        m = pattern.fullmatch(called)
        if m is None:
            continue
        for kind in CalledKind:
            value = m.groupdict().get(kind.value)
            if value:
                return Called(kind, value.lstrip("+") if kind is CalledKind.PHONE else value)
    if re.fullmatch(_PIECES["username"], called):
        return Called(CalledKind.USERNAME, called.lstrip("@"))
    if re.fullmatch(r"\+?\d{5,15}", called):
        return Called(CalledKind.PHONE, called.lstrip("+"))
    return None


__all__ = [
    "DEFAULT_CALLER_NAME",
    "DEFAULT_CALLER_PHONE",
    "NAME_FIELDS",
    "PHONE_FIELDS",
    "Called",
    "CalledKind",
    "CallerInfo",
    "TemplateError",
    "ascii_name",
    "parse_called",
    "parse_templates",
    "quote_display_name",
    "render",
]
