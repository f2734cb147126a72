import argparse

import iniconfig


def names(text: str) -> list[str]:
    return [s.name for s in iniconfig.IniConfig("x.ini", data=text)]


if __name__ == "__main__":
    argparse.ArgumentParser(description="The api service.").parse_args()
    print(names("[api]\n"))
