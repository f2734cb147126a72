"""Celery tasks and the Docker build pipeline: thin adapters over `core`."""
