"""tgsip: a Telegram to SIP voice gateway.

The package is layered (an arrow means "may import"):

    cli/__main__ -> bot, telegram, sip -> calls -> media, storage -> config, util

Only :mod:`tgsip.media` imports the native media core (``tgsip._media_core``).
Importing :mod:`tgsip` itself loads no native code, so the pure-Python parts
(SIP, the Telegram sandbox, the bot) work without the Rust build.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
