"""The pipeline's reuse step: before building, take the result of an earlier build of the same
owner with the same inputs (core/builds/reuse.py says what they are), or wait for an identical build
that is running, or claim the inputs and build."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from adapters.docker import DockerEngine, Stopped
from core.builds import reuse
from core.builds.options import BuildOptions
from core.db import session_scope
from core.dockerfile.syntax import DockerfileInvalid, image_uses
from core.models import Build
from core.settings import Settings
from core.supply_chain.provenance import builder_version

# How often a build that waits for an identical one looks again.
WAIT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Earlier:
    """The result of an earlier build, as read when deciding to reuse it."""

    id: str
    image_id: str
    fields: dict[str, Any]


class ReuseStep:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        docker: DockerEngine,
        *,
        build_id: str,
        owner: str,
        say: Callable[[str], None],
        must_stop: Callable[[], str | None],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.docker = docker
        self.build_id = build_id
        self.owner = owner
        self.say = say
        self.must_stop = must_stop

    def key(
        self,
        tree: str,
        options: BuildOptions,
        dockerfile_text: str,
        python_version: str,
        dependency_sources: tuple[str, ...] = (),
    ) -> str | None:
        """The key of this build's inputs; None (and why, in the log) when there is none."""
        try:
            references = {use.reference for use in image_uses(dockerfile_text, options.build_args)}
        except DockerfileInvalid:
            return None
        base_images = {}
        for reference in sorted(references):
            info = self.docker.find_image(reference)
            if info is None or not isinstance(info.get("Id"), str):
                self.say(f"reuse: not possible, {reference} is not on this build host yet")
                return None
            base_images[reference] = info["Id"]
        with session_scope(self.engine) as session:
            advisories = reuse.advisory_database_version(session)
        inputs = reuse.Inputs(
            tree=tree,
            options=options,
            base_images=base_images,
            python_version=python_version,
            service_version=builder_version(),
            advisories=advisories,
            dependency_sources=dependency_sources,
        )
        return inputs.key(self.settings)

    def earlier_result(self, key: str) -> Earlier | None:
        """The result to take for `key`, waiting for an identical build that is running; None
        once this build holds the key's claim and must build."""
        while True:
            with session_scope(self.engine) as session:
                decision = reuse.decide(session, owner=self.owner, key=key, build_id=self.build_id)
                source = decision.source
                earlier = (
                    None
                    if source is None or source.image_id is None
                    else Earlier(
                        source.id,
                        source.image_id,
                        {name: getattr(source, name) for name in reuse.RESULT_COLUMNS},
                    )
                )
            if earlier is not None:
                if self.docker.find_image(earlier.image_id) is not None:
                    return earlier
                self.say(f"reuse: the image of {earlier.id} is gone from this host; building")
                return None
            if decision.held:
                return None
            if decision.holder is not None:
                self.say(
                    f"reuse: {decision.holder} has the same inputs and is building; "
                    "waiting for its result"
                )
                self._wait_for(decision.holder)
                continue
            try:
                with session_scope(self.engine) as session:
                    reuse.claim(session, owner=self.owner, key=key, build_id=self.build_id)
            except IntegrityError:
                continue  # another build claimed the key in between: wait for that one
            return None

    def take(self, earlier: Earlier, tag: str) -> dict[str, Any]:
        """Tag the earlier build's image for this build and record its result as this one's:
        the fields to store."""
        self.docker.tag(earlier.image_id, tag)
        with session_scope(self.engine) as session:
            copied = reuse.copy_artifacts(session, source_id=earlier.id, build_id=self.build_id)
        tests = earlier.fields.get("tests") or {}
        verdict = (
            f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
            f"{tests.get('skipped', 0)} skipped"
            if tests
            else "no tests ran"
        )
        self.say(
            f"reused the result of {earlier.id}: same files, options, base images, dependency "
            f"inputs, checks and advisory database; nothing was rebuilt ({verdict}; "
            f"{', '.join(copied) or 'no documents'} copied). Pass no_cache=true to build afresh."
        )
        return earlier.fields | {"reused_from": earlier.id}

    def _wait_for(self, holder: str) -> None:
        while True:
            reason = self.must_stop()
            if reason is not None:
                raise Stopped(reason)
            with session_scope(self.engine) as session:
                status = session.scalar(select(Build.status).where(Build.id == holder))
            if status is None or status.terminal:
                return
            time.sleep(WAIT_POLL_SECONDS)
