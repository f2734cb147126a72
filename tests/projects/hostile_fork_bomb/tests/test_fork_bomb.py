"""A fork bomb: every process forks until the kernel refuses, and nobody ever exits."""

import os
import time

# Long enough for the suite to run another build next to the bomb while it holds its processes.
HOLD_SECONDS = 20


def _bomb():
    try:
        while True:
            os.fork()
    except OSError:
        pass
    while True:
        time.sleep(3600)


def test_fork_bomb():
    forks = 0
    try:
        while True:
            if os.fork() == 0:
                _bomb()
            forks += 1
    except OSError as exc:
        print(f"fork bomb: fork refused after {forks} children: {exc}", flush=True)
    time.sleep(HOLD_SECONDS)
    raise AssertionError(f"the fork bomb held {forks}+ processes")
