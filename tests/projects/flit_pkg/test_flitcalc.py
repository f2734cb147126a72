from flitcalc import add


def test_add():
    assert add(1, 2, 3) == 6


def test_add_nothing():
    assert add() == 0
