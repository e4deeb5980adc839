"""Session-scoped real stores (one SeaweedFS, one Azurite per test run) and a fresh bucket/container per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.servers import Azurite, SeaweedFS


def _unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with Azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """A new, empty bucket without Object Lock."""
    return seaweedfs.create_bucket(_unique("ls"))


@pytest.fixture
def locked_bucket(seaweedfs: SeaweedFS) -> str:
    """A new bucket created with Object Lock enabled (and therefore versioning)."""
    return seaweedfs.create_bucket(_unique("ls-lock"), object_lock=True)


@pytest.fixture
def azure_container(azurite: Azurite) -> str:
    """A new, empty blob container."""
    return azurite.create_container(_unique("ls"))
