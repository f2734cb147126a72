"""Prints the version of its one dependency, an old urllib3 pinned on purpose."""

import urllib3

if __name__ == "__main__":
    print(f"urllib3 {urllib3.__version__}")
