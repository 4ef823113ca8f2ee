"""Shared fixtures for the server tests: an HTTP client and auth headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ingress_logging.server import IngressServer
from ingress_logging.server.store import Store, open_store


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A pooled keep-alive client, like the library's own."""
    with httpx.Client(timeout=10.0) as c:
        yield c


@pytest.fixture
def auth(ingress_server: IngressServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {ingress_server.token}"}


@pytest.fixture
def oauth(ingress_server: IngressServer) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {ingress_server.oauth_token}",
        "x-organization-uuid": ingress_server.org_uuid,
    }


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest) -> str:
    """The store under test: in-memory SQLite, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return ":memory:"


@pytest.fixture
def ingress_server_db(store_db: str) -> str:
    """Every server test runs once on SQLite and once on PostgreSQL."""
    return store_db


@pytest.fixture
def store(store_db: str) -> Iterator[Store]:
    """A fresh store of the engine under test."""
    s = open_store(store_db)
    try:
        yield s
    finally:
        s.close()
