"""The operator's command line on the server side: `python -m core.admin ...`.

    advisories import PATH     load an OSV export (zip), a folder of OSV JSON files or one JSON
                               file; replaces the advisory database in one transaction
    advisories status          when it was imported, from what, how many advisories, its age
    advisories check-lock FILE the packages a pinned requirements file locks (the service's own
                               requirements.lock) against the database; exit 1 on a finding
    builds --base-digest D     the builds made on a base image digest (rebuild them with
                               POST /api/v1/admin/rebuild?base_digest=D)
    tokens create --owner NAME [--admin]
                               a new token, printed alone: how an operator gets back in after
                               revoking every admin token, the bootstrap token included

Uses the service's settings (IMAGEBUILDER_* environment) and database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.access.tokens import create_token
from core.builds.rebuilds import builds_on_base
from core.db import get_engine, session_scope
from core.detection.lockfile import LockInvalid, locked_packages
from core.errors import InvalidOption
from core.settings import get_settings
from core.supply_chain.advisories import (
    AdvisorySourceInvalid,
    database_status,
    find_vulnerabilities,
    load_osv,
    replace_advisories,
)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _import(path: Path, allow_empty: bool) -> int:
    engine = get_engine(get_settings())
    try:
        with session_scope(engine) as session:
            count = replace_advisories(session, load_osv(path), source=str(path.resolve()))
            if count == 0 and not allow_empty:
                raise AdvisorySourceInvalid(
                    f"{path} holds no PyPI or Debian advisory; the database was left as it was "
                    "(--allow-empty replaces it anyway)"
                )
    except (AdvisorySourceInvalid, OSError) as exc:
        sys.stderr.write(f"advisories import: {exc}\n")
        return 1
    _write(f"imported {count} PyPI and Debian advisories from {path}")
    return 0


def _status() -> int:
    with session_scope(get_engine(get_settings())) as session:
        status = database_status(session)
    _write(f"advisory database: {status.describe()}")
    if status.source:
        _write(f"source: {status.source}")
    return 0 if status.imported_at is not None else 1


def _check_lock(path: Path) -> int:
    try:
        packages = locked_packages(path.read_text(encoding="utf-8"))
    except (LockInvalid, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"advisories check-lock: {path}: {exc}\n")
        return 1
    with session_scope(get_engine(get_settings())) as session:
        status = database_status(session)
        if status.imported_at is None:
            sys.stderr.write("advisories check-lock: no advisory database was imported\n")
            return 1
        findings = find_vulnerabilities(session, packages)
    for finding in findings:
        _write(str(finding))
    _write(f"{len(packages)} locked packages, {len(findings)} findings ({status.describe()})")
    return 1 if findings else 0


def _builds(digest: str, limit: int) -> int:
    with session_scope(get_engine(get_settings())) as session:
        for build in builds_on_base(session, digest, limit=limit):
            _write(f"{build.id}\t{build.owner}\t{build.status}\t{build.image_tag or ''}")
    return 0


def _create_token(owner: str, admin: bool) -> int:
    try:
        with session_scope(get_engine(get_settings())) as session:
            secret = create_token(session, owner=owner, admin=admin).secret
    except InvalidOption as exc:
        sys.stderr.write(f"tokens create: {exc.detail}\n")
        return 1
    _write(secret)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.admin", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    advisories = commands.add_parser("advisories", help="the local vulnerability database")
    actions = advisories.add_subparsers(dest="action", required=True)
    load = actions.add_parser("import", help="replace the database with an OSV export")
    load.add_argument("path", type=Path, help="an OSV zip, a folder of OSV JSON, or a JSON file")
    load.add_argument("--allow-empty", action="store_true", help="accept a source with none")
    actions.add_parser("status", help="when the database was imported and how old it is")
    check = actions.add_parser("check-lock", help="a pinned requirements file's findings")
    check.add_argument("path", type=Path, help="a requirements file of name==version pins")
    builds = commands.add_parser("builds", help="builds made on a base image digest")
    builds.add_argument("--base-digest", required=True, help="sha256:<hex>")
    builds.add_argument("--limit", type=int, default=100)
    tokens = commands.add_parser("tokens", help="API tokens")
    token_actions = tokens.add_subparsers(dest="action", required=True)
    create = token_actions.add_parser("create", help="create a token and print it, once")
    create.add_argument("--owner", required=True)
    create.add_argument("--admin", action="store_true", help="an admin token")
    args = parser.parse_args(argv)
    if args.command == "tokens":
        return _create_token(args.owner, args.admin)
    if args.command == "advisories" and args.action == "import":
        return _import(args.path, args.allow_empty)
    if args.command == "advisories" and args.action == "check-lock":
        return _check_lock(args.path)
    if args.command == "advisories":
        return _status()
    return _builds(args.base_digest, args.limit)


if __name__ == "__main__":
    sys.exit(main())
