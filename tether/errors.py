"""The one exception type for bad input anywhere in Tether.

The CLI catches it (and ValueError/KeyError/FileNotFoundError) and prints a single line naming what was
wrong and what was expected, then exits non-zero; library callers can catch it precisely.
"""


class TetherError(ValueError):
    """Bad input: the message names the offending value and what was expected."""
