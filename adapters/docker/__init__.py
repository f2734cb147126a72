"""The Docker boundary: the only package that talks to a Docker daemon (docker-py and the CLI)."""
