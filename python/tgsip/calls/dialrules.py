"""Dial rules: ordered regex rewrites that turn a typed text or number into the number sent to
the PBX (product.md section 8.3).

Grammar, one rule per line, applied in order, each to the result of the previous one:

* ``LEFT=RIGHT``: every match of the regular expression LEFT in the number is replaced by the
  replacement template RIGHT (group references ``\\1``, ``\\2`` ...). No match: the rule is
  skipped. The ``=`` that splits a rule is the first one outside any group, character class or
  escape, so ``^(8|\\+7)(?=\\d{10})=7`` splits after the lookahead.
* A trailing unescaped ``.`` in RIGHT is a terminator and is dropped (``7.`` means ``7``;
  ``\\.`` stays a literal dot). This is the reading under which the documented example rules
  ``^(8|\\+7)([0-9]{10})$=7\\2`` and ``^(8|\\+7)(?=\\d{10})=7.`` are equivalent.
* A rule without ``=`` is a filter: the number must contain a match of it, otherwise the line is
  not suitable for that number (:meth:`DialRules.apply` returns None).
* A line holding only ``=`` resets the list: the rules before it are dropped.
* One pair of surrounding backticks is stripped from each line (administrators wrap rules in
  backticks so that Telegram leaves them alone).

User-supplied expressions can backtrack catastrophically, so :func:`parse_dial_rules` compiles
every rule and then runs the whole list against a fixed probe set in a child process under a
time bound (:data:`PROBE_TIMEOUT_S`); a rule set that does not finish is refused. Numbers are
capped at :data:`MAX_NUMBER_LEN` characters, the longest probe.

An empty result means "use the line's Number on PBX" for calls (the caller decides that).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_NUMBER_LEN = 64
"""Numbers (and texts used as numbers) are cut to this many characters before the rules run."""
MAX_RULES = 32
MAX_RULE_LEN = 256
PROBE_TIMEOUT_S = 2.0
"""Wall-clock bound for running the whole rule list over the probe set in the child process."""

DEFAULT_GATEWAY_RULES: tuple[str, ...] = (".*=",)
"""The default for gateway->PBX and IP<->IP lines: any text becomes empty (Number on PBX)."""

_PROBES: tuple[str, ...] = (
    "",
    "89261234567",
    "+79261234567",
    "8 (926) 123-45-67",
    "100",
    "*97#",
    "hello world",
    "1" * (MAX_NUMBER_LEN - 1) + "!",
    "a" * (MAX_NUMBER_LEN - 1) + "!",
    "+" + "7" * (MAX_NUMBER_LEN - 2) + "x",
    "12" * (MAX_NUMBER_LEN // 2 - 1) + "--",
    " " * (MAX_NUMBER_LEN - 1) + "#",
    "x" + "0" * (MAX_NUMBER_LEN - 1),
)


class DialRuleError(ValueError):
    """A rule list was refused; ``str(e)`` is a message fit to show the administrator."""


@dataclass(frozen=True)
class DialRule:
    """One compiled rule; ``replacement`` None marks a filter (a rule without ``=``)."""

    source: str
    pattern: re.Pattern[str]
    replacement: str | None


def _strip_backticks(text: str) -> str:
    """Trim one pair of surrounding backticks; a line of backticks only (a fence) is empty."""
    text = text.strip()
    if text and not text.strip("`"):
        return ""
    for fence in ("```", "`"):
        if len(text) >= 2 * len(fence) and text.startswith(fence) and text.endswith(fence):
            return text[len(fence) : -len(fence)].strip()
    return text


def _split(rule: str) -> tuple[str, str | None]:
    """Split at the first ``=`` outside groups, classes and escapes; no such ``=``: a filter."""
    depth = 0
    in_class = False
    i = 0
    while i < len(rule):
        ch = rule[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if rule[i + 1 : i + 2] == "]":  # "[]...]": a leading ] is literal
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "=" and depth == 0:
            return rule[:i], rule[i + 1 :]
        i += 1
    return rule, None


def _drop_terminator(right: str) -> str:
    if not right.endswith("."):
        return right
    backslashes = len(right[:-1]) - len(right[:-1].rstrip("\\"))
    if backslashes % 2 == 0:
        return right[:-1]
    return right[:-2] + "."  # an escaped final dot is a literal dot


def compile_rule(line: str) -> DialRule:
    """Compile one rule line (backticks already stripped). Raises DialRuleError."""
    if len(line) > MAX_RULE_LEN:
        raise DialRuleError(f"Rule too long (at most {MAX_RULE_LEN} characters): {line[:40]}…")
    left, right = _split(line)
    if not left:
        raise DialRuleError(f"Rule `{line}`: the part before = is empty")
    try:
        pattern = re.compile(left)
    except re.error as exc:
        raise DialRuleError(f"Rule `{line}`: invalid regular expression ({exc})") from exc
    replacement = None if right is None else _drop_terminator(right)
    if replacement is not None:
        try:
            # The template (escapes, group references) is parsed even when nothing matches.
            pattern.sub(replacement, "")
        except (re.error, IndexError) as exc:
            raise DialRuleError(f"Rule `{line}`: invalid replacement ({exc})") from exc
    return DialRule(line, pattern, replacement)


def normalise_rules(text: str | Sequence[str]) -> tuple[str, ...]:
    """Split typed text into rule lines: backticks stripped, blanks dropped, ``=`` resets."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in lines:
        line = _strip_backticks(raw)
        if not line:
            continue
        if line == "=":
            out.clear()
            continue
        out.append(line)
    return tuple(out)


def _probe(rules: Sequence[str]) -> None:
    """Run ``rules`` over every probe in a child process; refuse when it does not finish."""
    script = (
        "import json,re,sys\n"
        "rules=json.loads(sys.stdin.read())\n"
        "probes=" + repr(_PROBES) + "\n"
        "for p in probes:\n"
        "    n=p\n"
        "    for left,right in rules:\n"
        "        c=re.compile(left)\n"
        "        if right is None:\n"
        "            c.search(n)\n"
        "        else:\n"
        "            n=c.sub(right,n)[:" + str(MAX_NUMBER_LEN) + "]\n"
        "print('ok')\n"
    )
    compiled = [compile_rule(r) for r in rules]
    payload = json.dumps([[c.pattern.pattern, c.replacement] for c in compiled])
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", script],
            input=payload,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DialRuleError(
            "The rules take too long on a test number (a regular expression that backtracks "
            "catastrophically); simplify them"
        ) from exc
    if done.returncode != 0 or done.stdout.strip() != "ok":
        raise DialRuleError("The rules fail on a test number; check the replacements")


def parse_dial_rules(text: str | Sequence[str], probe: bool = True) -> tuple[str, ...]:
    """Validate typed rules; returns the normalised rule lines to store.

    Raises DialRuleError with a message for the administrator. With ``probe`` the rules are also
    run over the probe set in a child process under :data:`PROBE_TIMEOUT_S` (blocking: call it
    from a worker thread in async code).
    """
    rules = normalise_rules(text)
    if len(rules) > MAX_RULES:
        raise DialRuleError(f"Too many rules (at most {MAX_RULES})")
    for rule in rules:
        compile_rule(rule)
    if probe and rules:
        _probe(rules)
    return rules


class DialRules:
    """A compiled, ordered rule list (from stored, already validated lines)."""

    def __init__(self, rules: Iterable[str]) -> None:
        self.rules = tuple(compile_rule(r) for r in normalise_rules(list(rules)))

    def apply(self, number: str) -> str | None:
        """The number after every rule; None when a filter rule does not match (line unsuitable).

        ``number`` is cut to :data:`MAX_NUMBER_LEN` characters first, and so is every
        intermediate result.
        """
        current = number[:MAX_NUMBER_LEN]
        for rule in self.rules:
            if rule.replacement is None:
                if rule.pattern.search(current) is None:
                    return None
                continue
            current = rule.pattern.sub(rule.replacement, current)[:MAX_NUMBER_LEN]
        return current


__all__ = [
    "DEFAULT_GATEWAY_RULES",
    "MAX_NUMBER_LEN",
    "DialRule",
    "DialRuleError",
    "DialRules",
    "compile_rule",
    "normalise_rules",
    "parse_dial_rules",
]
