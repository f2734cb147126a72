import argparse
import sys

from inicount import count

parser = argparse.ArgumentParser(prog="inicount", description="Count INI sections on stdin.")
parser.parse_args()
print(count(sys.stdin.read()))
