"""One router per feature; :func:`routers` lists them in the order the dispatcher needs."""

from __future__ import annotations

from aiogram import Router

from tgsip.bot.routers import connect, lines, menu, session


def routers() -> list[Router]:
    """Feature routers; the menu router (with the catch-all) comes last."""
    return [m.router.build() for m in (connect, session, lines, menu)]
