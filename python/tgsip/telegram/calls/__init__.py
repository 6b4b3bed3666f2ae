"""Telegram private calls: DH key exchange, the per-call state machine, the ntgcalls media leg
and the Telethon shell that ties them together (``telegram_calls.md``).

Import :mod:`tgsip.telegram.calls.media` only where call media is needed: it loads ntgcalls.
"""
