"""Errors for bad user input.

Every error that a user can cause (a wrong depth, an unknown variant, a damaged data
file, a bad config key, a missing path) is raised as :class:`UsageError` (a
``ValueError``) with a one-line message that names the problem and what is valid.
The command line prints such errors as one line and exits with status 2.
"""

from __future__ import annotations

import difflib


class UsageError(ValueError):
    """Bad input from the user: the message is one line and says what is valid."""


class ConfigError(UsageError):
    """An unknown or invalid configuration key or value."""


class DatasetError(UsageError):
    """A missing, damaged or hostile dataset file."""


def close_matches(value, valid, n: int = 3) -> list[str]:
    """The names among ``valid`` closest to ``value`` (difflib, case-insensitive), best first."""
    names = {str(v).lower(): str(v) for v in valid}
    if str(value).lower() in names:  # only the case differs
        return [names[str(value).lower()]]
    return [names[m] for m in difflib.get_close_matches(str(value).lower(), list(names), n=n, cutoff=0.6)]


def did_you_mean(value, valid) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the names close to ``value``, or ``""``."""
    close = [repr(m) for m in close_matches(value, valid)]
    if not close:
        return ""
    return "; did you mean " + (close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]) + "?"


def choices_error(what: str, value, valid, where: str = "") -> UsageError:
    """A UsageError saying that ``value`` (``where``: e.g. `` in FILE``) is not a valid ``what``,
    listing ``valid`` and, where some are close to ``value``, suggesting them."""
    listed = ", ".join(str(v) for v in valid)
    return UsageError(f"unknown {what} {value!r}{where}; valid: {listed}{did_you_mean(value, valid)}")


def one_line(text) -> str:
    """``text`` squeezed onto one line (error messages must be one line)."""
    return " ".join(str(text).split())


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` of an exception, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:limit]
