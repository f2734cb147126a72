"""The HTTP API (FastAPI): thin handlers over `core`."""
