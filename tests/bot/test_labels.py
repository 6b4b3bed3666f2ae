"""The bot's labels are the product's (product.md Appendix A) with the brand replaced."""

from __future__ import annotations

import re
from pathlib import Path

from tgsip.bot.labels import LABELS, PRODUCT

BRAND = "SIP\u2024TG"
"""The brand as the appendix writes it (with U+2024 ONE DOT LEADER)."""
OWN_KEYS = {"PRIORITY"}
"""Keys the appendix does not have (product.md 8.1 names the setting)."""


def test_labels_match_appendix_a(shared: Path) -> None:
    text = (shared / "spec" / "product.md").read_text(encoding="utf-8")
    appendix = text.split("## Appendix A", 1)[1].split("## Appendix B", 1)[0]
    table = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \| .+ \|$", appendix, flags=re.M))
    assert len(table) > 100
    for key, value in LABELS.items():
        if key in OWN_KEYS:
            assert key not in table
            continue
        assert key in table, key
        assert value == table[key].replace(BRAND, PRODUCT), key
