"""Errors that describe a user's mistake (bad file, bad key, bad value).

The CLI turns :class:`InputError` into one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""


class InputError(ValueError):
    """A user input is invalid.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    source : str, optional
        The file (and line or key) the problem was found in.
    """

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}" if source else message)
