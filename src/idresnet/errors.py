"""Errors for bad user input.

Every error that a user can cause (a wrong depth, an unknown variant, a damaged data
file, a bad config key, a missing path) is raised as :class:`UsageError` (a
``ValueError``) with a one-line message that names the problem and what is valid.
The command line prints such errors as one line and exits with status 2.
"""


class UsageError(ValueError):
    """Bad input from the user: the message is one line and says what is valid."""


class ConfigError(UsageError):
    """An unknown or invalid configuration key or value."""


class DatasetError(UsageError):
    """A missing, damaged or hostile dataset file."""


def choices_error(what: str, value, valid) -> UsageError:
    """A UsageError saying that ``value`` is not a valid ``what``, listing ``valid``."""
    listed = ", ".join(str(v) for v in valid)
    return UsageError(f"unknown {what} {value!r}; valid: {listed}")


def one_line(text) -> str:
    """``text`` squeezed onto one line (error messages must be one line)."""
    return " ".join(str(text).split())


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` of an exception, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:limit]
