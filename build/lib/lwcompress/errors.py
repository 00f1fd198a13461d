"""User-facing errors: one line, no traceback, non-zero exit (see cli.py)."""


class UserError(Exception):
    """A mistake in a config, a path or an input that the user can fix; printed as one line."""
