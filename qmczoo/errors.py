"""Exception types qmczoo raises for bad user input.

Every error that comes from what a user typed (a molecule specification, a
config option, an ansatz name) derives from :class:`QmczooError`, which is a
``ValueError``; the command-line interface prints such errors as one line
instead of a traceback.
"""


class QmczooError(ValueError):
    """Base of every error qmczoo raises for bad user input; the CLI prints it as one line."""


class SystemSpecError(QmczooError):
    """A molecule specification that cannot be built."""


class ConfigError(QmczooError):
    """An unknown ansatz/layer name or option, or a bad setting."""


class QmczooWarning(UserWarning):
    """A warning the command line prints as one ``warning: ...`` line (a broken plug-in, what a
    resume repaired)."""


__all__ = ["QmczooError", "SystemSpecError", "ConfigError", "QmczooWarning"]
