"""The program's exceptions: failures the user can act on, and the stop that SIGTERM asks for."""


class TrainingError(Exception):
    """A failure the user can act on; its message is shown as is."""


class ConfigError(TrainingError):
    """The config file is malformed or asks for something impossible here."""


class DataError(TrainingError):
    """A dataset file is unreadable or has no usable example."""


class Interrupted(Exception):
    """The run was asked to stop and saved a checkpoint first."""
