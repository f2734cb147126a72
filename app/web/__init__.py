"""The web dashboard, served by the API at / (pages) and /ui/ (their helpers and static files)."""

from app.web.routes import install

__all__ = ["install"]
