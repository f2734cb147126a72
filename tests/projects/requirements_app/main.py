"""Print the sections of an INI file."""

import argparse

import iniconfig


def sections(text: str) -> list[str]:
    return [section.name for section in iniconfig.IniConfig("x.ini", data=text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    args = parser.parse_args()
    with open(args.path, encoding="utf-8") as handle:
        print("\n".join(sections(handle.read())))


if __name__ == "__main__":
    main()
