import iniconfig


def has_section(text: str, name: str) -> bool:
    return name in iniconfig.IniConfig("x.ini", data=text)
