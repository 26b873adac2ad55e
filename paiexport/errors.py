"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a recipe field, a file, an option.

    The message must name the offending field or file; the CLI prints it as a
    single line without a traceback.
    """


def shorten(text: object, limit: int = 60) -> str:
    """A user-supplied name or value cut to `limit` characters, so an error stays one short line."""
    text = str(text)
    if not text.isprintable():  # a control character (\n, \x1e, ...) would break the line
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(name: str, choices: list[str]) -> str:
    """' (did you mean 'target'?)' for the closest choice, or '' when nothing is close."""
    import difflib  # only needed on the error path

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class DiskFull(Exception):
    """The disk filled up while a run folder was written: the CLI prints the one line, exit 1."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after its last checkpoint; exit 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def first_line(exc: BaseException, limit: int = 150, *, kind: bool = True) -> str:
    """`Kind: first line of the message` of an exception, shortened: the one line an error shows.

    `kind=False` gives the first line alone (the kind's name when the message is empty).
    Safe for any message: empty, whitespace only, or a single huge line.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    name = type(exc).__name__
    if not first:
        return name
    return f"{name}: {shorten(first, limit)}" if kind else shorten(first, limit)
