import six

from wordcount import count


def test_count():
    assert count("a b  c") == 3


def test_six_is_the_py311_pin():
    # tox.ini pins six per Python version; the build runs 3.11.
    assert six.__version__ == "1.17.0"
