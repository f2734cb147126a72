"""Deciding to reuse, wait or build, on SQLite and PostgreSQL: claims make identical builds
build once, a claim whose build ended is stale, and only succeeded results are taken."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from core.builds.reuse import claim, decide, release
from core.db import session_scope
from core.models import Build, ReuseClaim
from core.status import BuildStatus
from tests.factories import queued_build

KEY = "k" * 64


def set_build(engine: Engine, build_id: str, **values: object) -> None:
    with session_scope(engine) as session:
        session.execute(update(Build).where(Build.id == build_id).values(**values))


def decision_of(engine: Engine, build_id: str, owner: str = "alice") -> tuple[str | None, ...]:
    with session_scope(engine) as session:
        decided = decide(session, owner=owner, key=KEY, build_id=build_id)
        return (decided.source.id if decided.source else None, decided.holder)


def claim_for(engine: Engine, build_id: str, owner: str = "alice") -> None:
    with session_scope(engine) as session:
        claim(session, owner=owner, key=KEY, build_id=build_id)


class TestDecide:
    def test_the_first_claims_the_next_waits_then_takes_the_result(self, engine: Engine) -> None:
        first, second = queued_build(engine), queued_build(engine)
        set_build(engine, first, status=BuildStatus.RUNNING)

        assert decision_of(engine, first) == (None, None)
        claim_for(engine, first)
        assert decision_of(engine, second) == (None, first)  # first is building: wait
        with pytest.raises(IntegrityError):
            claim_for(engine, second)

        set_build(engine, first, status=BuildStatus.SUCCEEDED, reuse_key=KEY, image_id="sha256:1")
        with session_scope(engine) as session:
            release(session, build_id=first)
        assert decision_of(engine, second) == (first, None)

    def test_a_retried_build_that_holds_the_claim_builds(self, engine: Engine) -> None:
        retried = queued_build(engine)
        claim_for(engine, retried)

        with session_scope(engine) as session:
            decided = decide(session, owner="alice", key=KEY, build_id=retried)
        assert decided.held
        assert decided.holder is None
        assert decided.source is None

    def test_a_claim_whose_build_ended_without_a_result_is_stale(self, engine: Engine) -> None:
        failed, next_one = queued_build(engine), queued_build(engine)
        claim_for(engine, failed)
        set_build(engine, failed, status=BuildStatus.FAILED, reuse_key=KEY)

        assert decision_of(engine, next_one) == (None, None)  # build it
        claim_for(engine, next_one)  # the stale claim is gone
        with session_scope(engine) as session:
            holders = session.scalars(select(ReuseClaim.build_id)).all()
        assert holders == [next_one]

    def test_only_the_owners_succeeded_and_unpurged_results_count(self, engine: Engine) -> None:
        theirs = queued_build(engine, owner="bob")
        set_build(engine, theirs, status=BuildStatus.SUCCEEDED, reuse_key=KEY, image_id="sha256:1")
        failed = queued_build(engine)
        set_build(engine, failed, status=BuildStatus.FAILED, reuse_key=KEY, image_id="sha256:2")
        purged = queued_build(engine)
        set_build(
            engine,
            purged,
            status=BuildStatus.SUCCEEDED,
            reuse_key=KEY,
            image_id="sha256:3",
            purged_at=Build.created_at,
        )
        mine = queued_build(engine)

        assert decision_of(engine, mine) == (None, None)
        assert decision_of(engine, mine, owner="bob") == (theirs, None)
