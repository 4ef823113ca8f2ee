"""A real session-ingress server: an ASGI app on its own HTTP/1.1 server; SQLite or PostgreSQL.

The server side of the protocol in ``PROTOCOL.md``: embedded for development,
demos and tests (what moto is to AWS users, with switchable faults), and a
team server (PostgreSQL, several workers, named tokens, health and metrics).

>>> from ingress_logging.server import run_server
>>> with run_server(token="t") as srv:  # doctest: +SKIP
...     srv.session_url("s1")

See ``docs/server.md`` for the command line, the pytest fixture and the faults.
"""

from __future__ import annotations

from ._faults import FaultDecision, FaultInjector, ScriptStep
from ._serve import serve
from ._server import DEFAULT_MAX_BODY_BYTES, IngressServer, run_server
from ._state import RequestRecord

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "FaultDecision",
    "FaultInjector",
    "IngressServer",
    "RequestRecord",
    "ScriptStep",
    "run_server",
    "serve",
]
