import time


def test_takes_a_few_seconds():
    time.sleep(8)
    assert True
