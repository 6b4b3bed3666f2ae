"""One router per feature; :func:`routers` lists them in the order the dispatcher needs."""

from __future__ import annotations

from aiogram import Router

from tgsip.bot.routers import connect, lines, menu, session


def routers() -> list[Router]:
    """Feature routers: commands first (they win over any pending input), the catch-all last."""
    features = [m.router.build() for m in (menu, connect, session, lines)]
    return [*features, menu.fallback.build()]
