from fastsum import total


def test_total():
    assert total(100) == 5050


def test_is_compiled():
    import fastsum._speedups as speedups

    assert speedups.__file__.endswith(".so")
