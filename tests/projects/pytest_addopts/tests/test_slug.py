import pytest

from slug import slugify


def test_spaces():
    assert slugify("a  b") == "a-b"


@pytest.mark.timeout(30)
def test_timeout_marker_needs_the_plugin():
    assert slugify("--x--") == "x"
