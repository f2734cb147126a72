def add(a: int, b: int) -> int:
    return a + b


def subtract(a: int, b: int) -> int:
    return a + b  # the bug the failing test finds
