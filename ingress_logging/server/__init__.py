"""A real, local session-ingress server: HTTP/1.1 on loopback, data in SQLite.

What moto is to AWS users: the server side of the protocol in
``PROTOCOL.md``, for development, demos and tests, with switchable faults.
Standard library (``http.server`` + ``sqlite3``) plus orjson, a core dependency,
to accept exactly the JSON the library's reader can read back.

>>> from ingress_logging.server import run_server
>>> with run_server(token="t") as srv:  # doctest: +SKIP
...     srv.session_url("s1")

See ``docs/server.md`` for the command line, the pytest fixture and the faults.
"""

from __future__ import annotations

from ._faults import FaultDecision, FaultInjector, ScriptStep
from ._server import DEFAULT_MAX_BODY_BYTES, IngressServer, run_server, serve
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
