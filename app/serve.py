"""Serve the API: `python -m app.serve`, with as many processes as IMAGEBUILDER_API_WORKERS says.

Each process runs `api_threads` handler threads and a pool of `database_pool_size` (+ overflow)
connections, all read from the same validated settings, so the three are sized together.
"""

from __future__ import annotations

import argparse

import uvicorn

from core.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-*")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()  # validated here, before any process starts
    uvicorn.run(
        "app.main:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        proxy_headers=args.proxy_headers,
        access_log=not args.no_access_log,
    )


if __name__ == "__main__":
    main()
