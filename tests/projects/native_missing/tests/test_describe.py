from mpver import describe


def test_describe():
    assert describe("4.2") == "mpfr 4.2"
