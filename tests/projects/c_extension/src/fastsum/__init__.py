from fastsum._speedups import sum_to


def total(n: int) -> int:
    """0 + 1 + ... + n, computed in C."""
    return sum_to(n)
