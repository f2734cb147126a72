"""Count the sections of an INI document."""

import iniconfig


def count(text: str) -> int:
    return len(list(iniconfig.IniConfig("x.ini", data=text)))
