import argparse


def shout(text: str) -> str:
    return text.upper() + "!"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="shout", description="Shout a text.")
    parser.add_argument("text")
    print(shout(parser.parse_args(argv).text))
