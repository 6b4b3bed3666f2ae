"""The gateway's Telegram side: session accounts (Telethon) and private calls."""
