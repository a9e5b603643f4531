"""The exceptions the CLI turns into one line: user mistakes (exit 2) and interrupts (exit 130)."""


class UserError(Exception):
    """Bad input from the user (a flag, a file, a dataset): the message says what and how to fix it."""


class Interrupted(Exception):
    """Ctrl-C, with where it struck and how to resume."""
