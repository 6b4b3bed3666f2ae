"""Dial rules: the documented examples of product.md section 8.3 and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.calls.dialrules import (
    DEFAULT_GATEWAY_RULES,
    MAX_NUMBER_LEN,
    DialRuleError,
    DialRules,
    normalise_rules,
    parse_dial_rules,
)

CLEANUP = "`[^+*#\\w]=`"


def test_documented_cleanup_then_leading_eight() -> None:
    rules = DialRules(parse_dial_rules(f"{CLEANUP}\n`^8=7`"))
    assert rules.apply("8 (926) 123-45-67") == "79261234567"


@pytest.mark.parametrize("rule", ["`^(8|\\+7)([0-9]{10})$=7\\2`", "`^(8|\\+7)(?=\\d{10})=7.`"])
@pytest.mark.parametrize("number", ["89261234567", "+79261234567", "8 (926) 123-45-67"])
def test_documented_equivalent_rules(rule: str, number: str) -> None:
    rules = DialRules(parse_dial_rules(f"{CLEANUP}\n{rule}"))
    assert rules.apply(number) == "79261234567"


def test_default_rule_empties_any_text() -> None:
    rules = DialRules(DEFAULT_GATEWAY_RULES)
    assert rules.apply("hello, please call 100") == ""
    assert rules.apply("") == ""


def test_escaped_trailing_dot_stays_literal() -> None:
    assert DialRules(parse_dial_rules("`^1=x\\.`")).apply("123") == "x.23"


def test_reset_line_clears_earlier_rules() -> None:
    assert parse_dial_rules("^8=7\n=\n^9=1") == ("^9=1",)
    assert parse_dial_rules("`=`") == ()
    assert normalise_rules(["  ", "`^8=7`", ""]) == ("^8=7",)


def test_code_block_fences_are_not_rules() -> None:
    assert parse_dial_rules("```\n^8=7\n.*x\n```") == ("^8=7", ".*x")
    assert parse_dial_rules("```^8=7```\n`^9=1`") == ("^8=7", "^9=1")


def test_filter_rule_decides_suitability() -> None:
    rules = DialRules(parse_dial_rules("^\\d{3}$\n^1=2"))
    assert rules.apply("100") == "200"
    assert rules.apply("+7926") is None


def test_unmatched_rule_is_skipped() -> None:
    assert DialRules(parse_dial_rules("^9=1")).apply("800") == "800"


def test_numbers_are_capped() -> None:
    assert DialRules(()).apply("1" * 100) == "1" * MAX_NUMBER_LEN


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("(abc=1", "invalid regular expression"),
        ("^8=\\3", "invalid replacement"),
        ("^8=\\q", "invalid replacement"),
        ("=7", "empty"),
        ("x" * 300, "too long"),
        ("\n".join(f"^{i}=1" for i in range(40)), "Too many"),
    ],
)
def test_bad_rules_are_refused_with_a_message(text: str, needle: str) -> None:
    with pytest.raises(DialRuleError, match=needle):
        parse_dial_rules(text)


def test_catastrophic_backtracking_is_refused_under_a_time_bound() -> None:
    with pytest.raises(DialRuleError, match="too long"):
        parse_dial_rules("`^(1+)+$`")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_refused_cleanly_or_compiles(text: str) -> None:
    try:
        rules = parse_dial_rules(text, probe=False)
    except DialRuleError as exc:
        message = str(exc)
        assert message
        return
    result = DialRules(rules).apply("89261234567")
    assert result is None or len(result) <= MAX_NUMBER_LEN
