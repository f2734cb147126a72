import sys

from settings import load

if __name__ == "__main__":
    sys.exit(load())
