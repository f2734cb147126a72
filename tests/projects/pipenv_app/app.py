import sys

import iniconfig


def first_section(text: str) -> str | None:
    sections = list(iniconfig.IniConfig("x.ini", data=text))
    return sections[0].name if sections else None


if __name__ == "__main__":
    print(first_section("" if "--help" in sys.argv else sys.stdin.read()))
