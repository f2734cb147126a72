"""A child process exhausts the memory; the test process survives and sees it killed."""

import signal
import subprocess
import sys

HOG = "hoard = []\nwhile True:\n    hoard.append(b'\\xff' * (16 * 1024 * 1024))\n"


def test_child_is_killed_for_lack_of_memory():
    child = subprocess.run([sys.executable, "-c", HOG], check=False)
    print(f"memory hog child ended with {child.returncode}", flush=True)
    assert child.returncode == -signal.SIGKILL
