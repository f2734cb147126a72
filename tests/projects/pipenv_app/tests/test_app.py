from app import first_section


def test_first():
    assert first_section("[x]\n[y]\n") == "x"


def test_none():
    assert first_section("") is None
