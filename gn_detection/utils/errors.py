"""The error a user can fix: what the command line reports in one line."""

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input: a config value, a data or weights file, a command-line argument. Its message
    names the file or key, what was expected and what was found. ``gn-detect`` prints it without
    a traceback; any other exception is a bug and shows its traceback. A ValueError, so callers
    that catch ValueError keep working."""
