import argparse

import iniconfig


def keys(text: str, section: str) -> list[str]:
    return list(iniconfig.IniConfig("x.ini", data=text)[section])


def main() -> None:
    parser = argparse.ArgumentParser(prog="poetry-app", description="List the keys of a section.")
    parser.add_argument("path")
    parser.add_argument("section")
    args = parser.parse_args()
    with open(args.path, encoding="utf-8") as handle:
        print(" ".join(keys(handle.read(), args.section)))
