"""``ingress_prepare_entry`` sees the caller's context variables.

The entry is built and prepared on a delivery worker, but inside a copy of
the context the record was logged in: a plugin that enriches entries with a
request id kept in a ``ContextVar`` gets the caller's value, not the
worker's, for each record - also when several threads log at once.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

from ingress_logging.handler import IngressHandler
from ingress_logging.plugins import hookimpl, new_plugin_manager
from ingress_logging.server import IngressServer

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class RequestIdPlugin:
    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["request_id"] = REQUEST_ID.get()
        entry["prepared_on"] = threading.current_thread().name
        return entry


def test_a_plugin_enriches_from_the_callers_context_variables(
    ingress_server: IngressServer,
) -> None:
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(RequestIdPlugin(), name="request-id")
    handler = IngressHandler(
        token=ingress_server.token,
        session_id="enrich",
        base_api_url=ingress_server.base_url,
        plugins=pm,
    )
    log = logging.getLogger("tests.plugins.enrich")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)

    def serve(request_id: str) -> None:
        REQUEST_ID.set(request_id)
        for n in range(5):
            log.info("%s step %d", request_id, n)

    try:
        log.info("outside any request")
        threads = [threading.Thread(target=serve, args=(f"req-{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert handler.engine.flush(10)
    finally:
        log.removeHandler(handler)
        handler.close()

    stored = ingress_server.entries("enrich")
    assert len(stored) == 21
    assert stored[0]["request_id"] == "none"
    for entry in stored[1:]:
        # Each record carries the id its own thread had set when it logged.
        assert entry["content"].split(" ")[0] == entry["request_id"]
    # ...though every one was prepared on a delivery worker, not the logging thread.
    assert all(not e["prepared_on"].startswith("Thread-") for e in stored)
    assert all(e["prepared_on"] != "MainThread" for e in stored)
