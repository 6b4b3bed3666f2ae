"""FSM states of the multi-step inputs (the data they keep is named beside each state)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Connect(StatesGroup):
    """Connecting a session. Data: ``digits`` (code typed on the keypad so far), ``length``,
    ``keypad_id`` (the keypad message). The LoginFlow itself lives in the LoginFlows registry."""

    storage = State()
    phone = State()
    code = State()
    recovery = State()


class EditSession(StatesGroup):
    """Data: ``sid``, ``field`` (a SessionText value)."""

    value = State()


class EditLine(StatesGroup):
    """Data: ``lid``, ``field`` (a LineField value)."""

    value = State()


class AssignAdmin(StatesGroup):
    """Data: ``sid``; waiting for the user picked with the request_users keyboard."""

    pick = State()
