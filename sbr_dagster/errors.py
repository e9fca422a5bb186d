"""One exception type for every problem a user can fix, so callers can show it without a stack trace."""


class InputDataError(ValueError):
    """Input data or configuration is unusable; the message names the file, line or value and what to do."""
