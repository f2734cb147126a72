def dump(table: dict[str, str]) -> str:
    import tomli_w

    return tomli_w.dumps(table)
