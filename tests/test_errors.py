"""The one exception type and the one-line messages of paiexport.errors."""

from paiexport.errors import DiskFull, Interrupted, UserError, did_you_mean, first_line, shorten


def test_first_line_without_the_kind():
    assert first_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert first_line(ValueError("bad\nmore"), kind=False) == "bad"
    assert first_line(ValueError("  "), kind=False) == first_line(ValueError()) == "ValueError"


def test_first_line_shortens_a_huge_line_to_the_limit():
    assert first_line(ValueError("x" * 500), limit=10) == "ValueError: " + "x" * 9 + "…"
    assert first_line(OSError("disk\nfull"), kind=False, limit=3) == "di…"


def test_shorten_cuts_to_the_limit_and_escapes_control_characters():
    assert shorten("abc") == "abc" and shorten("x" * 60) == "x" * 60
    assert shorten("x" * 61) == "x" * 59 + "…" and len(shorten("y" * 10**6)) == 60
    assert shorten(12345, limit=3) == "12…"  # any object, by its str
    assert shorten("a\nb\x1ec") == "a\\nb\\x1ec"  # one line, whatever the user typed


def test_did_you_mean_names_the_closest_choice_only_when_close():
    assert did_you_mean("targte", ["target", "distribution"]) == " (did you mean 'target'?)"
    assert did_you_mean("zzz", ["target", "distribution"]) == ""


def test_interrupted_is_a_keyboard_interrupt_carrying_its_signal():
    stop = Interrupted(15)
    assert isinstance(stop, KeyboardInterrupt) and stop.signum == 15
    assert not issubclass(UserError, KeyboardInterrupt) and not issubclass(DiskFull, UserError)
