"""User-facing errors.

Every error a user can cause (a wrong path, an unknown option, a corrupt checkpoint) is a
`GenlabError`: the CLI prints its message without a traceback. The message names the problem
and the fix.
"""


class GenlabError(Exception):
    """An error caused by input the user can correct; the message says how."""


class ConfigError(GenlabError, ValueError):
    """An unknown key, a wrong type or an invalid value in a configuration or option."""


class CheckpointError(GenlabError):
    """A saved model or checkpoint that cannot be read: corrupt, foreign or from a newer format."""


class DataError(GenlabError, ValueError):
    """Data that cannot be loaded or does not fit the model."""


class TrainingDiverged(GenlabError, RuntimeError):
    """The loss or a gradient became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step
