from app import names


def test_names():
    assert names("[api]\n") == ["api"]
