"""Dockerfiles: rendering one for a project without its own, reading a user's as BuildKit does,
linting it, and the user an image runs as."""
