import sys


def test_runs_on_an_allowed_python():
    assert sys.version_info < (3, 13)
