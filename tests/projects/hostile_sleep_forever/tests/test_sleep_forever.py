"""Sleeps forever and ignores every polite request to stop."""

import signal
import time


def test_sleep_forever():
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    while True:
        time.sleep(3600)
