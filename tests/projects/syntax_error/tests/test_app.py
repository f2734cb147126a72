from app import broken


def test_broken():
    assert broken() == 1
