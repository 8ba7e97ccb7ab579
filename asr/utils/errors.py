"""Exceptions that carry a message fit for a user (the CLI prints them without a traceback)."""


class AsrError(Exception):
    """Base class: a problem with the user's input, stated so they can fix it."""


class AudioError(AsrError):
    """An audio file that cannot be read or holds no usable samples."""


class ManifestError(AsrError):
    """A manifest line that is not valid JSON, lacks a field, or names a missing file."""


class ConfigError(AsrError):
    """A TOML config with an unknown key or a value of the wrong type."""
