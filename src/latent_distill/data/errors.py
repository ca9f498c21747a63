"""The error every data check raises: it names the problem and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Raised when a dataset cannot be used as given; the message names the problem and the fix."""
