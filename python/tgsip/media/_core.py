"""The one place in tgsip that imports the native media core.

Everything else reaches it through :mod:`tgsip.media`.
"""

from tgsip import _media_core as native

__all__ = ["native"]
