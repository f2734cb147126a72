from pdm_app import value


def test_value():
    assert value("[s]\nk = v\n", "s", "k") == "v"


def test_missing_key():
    import pytest

    with pytest.raises(KeyError):
        value("[s]\n", "s", "k")
