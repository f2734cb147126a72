"""Count words in text."""


def count(text: str) -> int:
    return len(text.split())
