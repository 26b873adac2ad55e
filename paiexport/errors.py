"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a recipe field, a file, an option.

    The message must name the offending field or file; the CLI prints it as a
    single line without a traceback.
    """
