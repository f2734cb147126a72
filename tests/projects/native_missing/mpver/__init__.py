def describe(version: str) -> str:
    return f"mpfr {version}"
