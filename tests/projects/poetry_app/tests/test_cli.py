from poetry_app.cli import keys


def test_keys():
    assert keys("[s]\na = 1\nb = 2\n", "s") == ["a", "b"]
