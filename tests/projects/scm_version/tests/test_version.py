from importlib.metadata import version

from scm_greeter import greet


def test_greet():
    assert greet("x") == "hello, x"


def test_version_is_the_one_pkg_info_records():
    # hatch-vcs reads it from git; the upload has no .git, so PKG-INFO's version is given.
    assert version("scm-greeter") == "1.4.2"
