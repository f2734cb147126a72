def message() -> str:
    return "hello from my own Dockerfile"
