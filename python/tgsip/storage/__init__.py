"""The gateway's persistent state: the configuration store (sessions, lines, settings) and the
secret box that encrypts secrets at rest."""

from tgsip.storage.secretbox import SecretBox, SecretError
from tgsip.storage.store import ConfigChange, ConfigStore, StoreError

__all__ = ["ConfigChange", "ConfigStore", "SecretBox", "SecretError", "StoreError"]
