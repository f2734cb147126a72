"""core.access.namespaces: every image an owner's build creates, reads or pushes stays in its
namespace."""

from __future__ import annotations

import pytest

from core.access.namespaces import (
    OwnedTag,
    cache_scope,
    foreign_images,
    owner_component,
    push_target,
)
from core.errors import TagNotAllowed
from core.supply_chain.policy import BaseImageUse

NAMESPACE = "imagebuilder/owners"


class TestOwnerComponent:
    def test_a_plain_owner_name_is_used_as_it_is(self) -> None:
        assert owner_component("alice") == "alice"
        assert owner_component("team-a.ci") == "team-a.ci"

    @pytest.mark.parametrize("owner", ["Alice", "bob@example.com", "x--y", "a_", "-"])
    def test_other_names_are_encoded_into_one_valid_component(self, owner: str) -> None:
        component = owner_component(owner)
        assert "--" in component
        assert "/" not in component
        assert OwnedTag(owner, "app", "1").local(NAMESPACE).startswith(f"{NAMESPACE}/{component}/")

    def test_distinct_owners_never_share_a_component(self) -> None:
        owners = ["alice", "Alice", "ALICE", "alice--0", "a.lice", "a@lice", "a-lice"]
        assert len({owner_component(owner) for owner in owners}) == len(owners)


class TestOwnedTag:
    @pytest.mark.parametrize(
        ("tag", "local"),
        [
            ("myapp:1.2", f"{NAMESPACE}/alice/myapp:1.2"),
            ("myapp", f"{NAMESPACE}/alice/myapp:latest"),
            ("team/app:1", f"{NAMESPACE}/alice/team/app:1"),
            # The service's own names become names inside the owner's namespace, harmlessly.
            ("imagebuilder/python:3.11", f"{NAMESPACE}/alice/imagebuilder/python:3.11"),
            ("python:3.11-slim", f"{NAMESPACE}/alice/python:3.11-slim"),
            (f"{NAMESPACE}/bob/app:1", f"{NAMESPACE}/alice/{NAMESPACE}/bob/app:1"),
        ],
    )
    def test_every_tag_lands_below_the_owner(self, tag: str, local: str) -> None:
        assert OwnedTag.for_build("alice", tag, "b_X").local(NAMESPACE) == local

    def test_no_tag_names_the_build(self) -> None:
        owned = OwnedTag.for_build("alice", None, "b_01ABC")
        assert owned.local(NAMESPACE) == f"{NAMESPACE}/alice/b_01abc:latest"

    @pytest.mark.parametrize(
        "tag",
        ["registry.example.com/other-team/app:1", "localhost/app", "127.0.0.1:5000/app:1"],
    )
    def test_a_registry_host_is_refused(self, tag: str) -> None:
        with pytest.raises(TagNotAllowed):
            OwnedTag.for_build("alice", tag, "b_X")

    def test_a_tag_too_long_once_namespaced_is_refused(self) -> None:
        with pytest.raises(TagNotAllowed):
            OwnedTag.for_build("alice", "a" * 240, "b_X").local(NAMESPACE)

    def test_the_registry_keeps_the_owner_path(self) -> None:
        local = OwnedTag.for_build("alice", "app:1", "b_X").local(NAMESPACE)
        assert push_target("registry:5000/ci", NAMESPACE, local) == "registry:5000/ci/alice/app:1"

    def test_a_reference_outside_the_namespace_is_never_pushed(self) -> None:
        with pytest.raises(TagNotAllowed):
            push_target("registry:5000", NAMESPACE, "imagebuilder/python:3.11")


def uses(*references: str) -> list[BaseImageUse]:
    return [BaseImageUse(n, "FROM", r, r) for n, r in enumerate(references, start=1)]


class TestForeignImages:
    def test_other_owners_images_are_foreign_in_every_spelling(self) -> None:
        found = foreign_images(
            uses(
                f"{NAMESPACE}/bob/app:1",
                f"docker.io/{NAMESPACE}/bob/app:1",
                f"index.docker.io/{NAMESPACE}/bob/app:1",
                f"{NAMESPACE}/bob/app@sha256:{'a' * 64}",
                f"{NAMESPACE}/alice2/app",
                "registry:5000/ci/bob/app:1",
            ),
            owner="alice",
            namespace=NAMESPACE,
            registry_url="registry:5000/ci",
        )
        assert len(found) == 6

    def test_own_images_bases_and_others_are_not(self) -> None:
        found = foreign_images(
            uses(
                f"{NAMESPACE}/alice/app:1",
                "registry:5000/ci/alice/app:1",
                "imagebuilder/python:3.11",
                "python:3.12-slim",
                "imagebuilder/ownersx/bob/app",
            ),
            owner="alice",
            namespace=NAMESPACE,
            registry_url="registry:5000/ci",
        )
        assert found == []


class TestCacheScope:
    def test_owners_get_distinct_stable_scopes(self) -> None:
        assert cache_scope("alice") == cache_scope("alice")
        assert cache_scope("alice") != cache_scope("Alice")
