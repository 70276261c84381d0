"""The one exception class whose message is shown to users."""


class MLSDError(Exception):
    """An error a person can act on: the message names what went wrong and the fix."""
