"""The one exception type for user mistakes: the CLI prints it as a single line and exits 2."""


class UserError(Exception):
    """Bad input from the user (a flag, a file, a dataset): the message says what and how to fix it."""
