"""A tiny application that reads an INI file with its one dependency."""

import iniconfig


def greeting(config_text: str) -> str:
    config = iniconfig.IniConfig("app.ini", data=config_text)
    return f"hello, {config['app']['name']}"


if __name__ == "__main__":
    print(greeting("[app]\nname = world\n"))
