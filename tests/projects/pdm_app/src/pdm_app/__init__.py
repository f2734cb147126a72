import iniconfig


def value(text: str, section: str, key: str) -> str:
    return iniconfig.IniConfig("x.ini", data=text)[section][key]
