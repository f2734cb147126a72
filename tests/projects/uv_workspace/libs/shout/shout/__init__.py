"""Shout."""

__version__ = "1.0.0"


def shout(text: str) -> str:
    return text.upper() + "!"
