"""Fixtures for ``ingress_logging.transcript``: a transcript on a real local server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.server import IngressServer
from ingress_logging.transcript import Transcript


@pytest.fixture
def engine(ingress_server: IngressServer) -> Iterator[DeliveryEngine]:
    engine = DeliveryEngine(base_api_url=ingress_server.base_url, token=ingress_server.token)
    yield engine
    engine.close(5.0)


@pytest.fixture
def new_transcript(engine: DeliveryEngine) -> Callable[..., Transcript]:
    def make(**kwargs: object) -> Transcript:
        return Transcript(f"agent-{uuid.uuid4()}", engine=engine, **kwargs)  # type: ignore[arg-type]

    return make
