import sys

import iniconfig


def section_names(text: str) -> list[str]:
    return [section.name for section in iniconfig.IniConfig("x.ini", data=text)]


if __name__ == "__main__":
    print(section_names(sys.stdin.read() if not sys.stdin.isatty() else ""))
