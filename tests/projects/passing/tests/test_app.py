import sys

import pytest

from app import greeting


def test_greets_by_name():
    assert greeting("[app]\nname = ada\n") == "hello, ada"


def test_missing_section_raises():
    with pytest.raises(KeyError):
        greeting("[other]\nname = x\n")


@pytest.mark.parametrize("name", ["a", "b"])
def test_many_names(name):
    assert greeting(f"[app]\nname = {name}\n").endswith(name)


@pytest.mark.skipif(sys.version_info >= (3,), reason="Python 2 only")
def test_python2_only():
    raise AssertionError("never runs")
