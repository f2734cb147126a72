import pytest

from greeter import greet


@pytest.mark.parametrize("name", ["ada", "grace"])
def test_greets(name):
    assert greet(name) == f"hello, {name}"
