"""The one exception type and the one-line messages of paiexport.errors."""

from paiexport.errors import first_line


def test_first_line_without_the_kind():
    assert first_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert first_line(ValueError("bad\nmore"), kind=False) == "bad"
    assert first_line(ValueError("  "), kind=False) == first_line(ValueError()) == "ValueError"
