"""The errors a user can fix, as one family.

The command line prints a `UserError`'s message and exits with code 2; any other
exception is a bug (exit 1, traceback to a log file). Each subclass is also a
`ValueError`, so callers of the Python API that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave: a file, a spec, a plan, a design, data, an argument."""


class InputError(UserError, ValueError):
    """An input cannot be used: a missing, unreadable, empty or malformed file, or data
    whose values the requested operation cannot take."""


class SpecError(UserError, ValueError):
    """A spec file (generator spec, design, plan, study, effect) could not be read or is invalid."""
