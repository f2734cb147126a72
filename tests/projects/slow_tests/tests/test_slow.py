import time


def test_takes_minutes():
    time.sleep(600)
