"""The imagebuilder domain: settings, storage, the build state machine and project analysis.

Imports neither FastAPI nor Celery: `app/` (HTTP) and `worker/` (jobs) are thin adapters over it.
"""
