"""The gateway's Telegram side: session accounts (login, storage, supervision) and messages.

``login`` connects an account, ``manager`` keeps accounts online, ``storage`` keeps their
Telethon sessions (embedded SQLite or PostgreSQL, auth keys sealed), ``messages`` receives and
sends messages as a session account. Private calls live in ``tgsip.telegram.calls``.
"""
