"""The local server in a child process, so a benchmark's CPU clock counts the client only.

Spawned (not forked) so the child shares no threads or locks with the
benchmark; the benchmarks directory must be importable by name in the child,
which it is when a benchmark runs as a script (or after ``sys.path`` insert).
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection


def _serve(conn: Connection) -> None:
    from ingress_logging.server import run_server

    with run_server() as srv:
        conn.send((srv.base_url, srv.token))
        conn.recv()  # parent says stop


class ChildServer:
    """A running server: ``base_url`` and ``token``; ``stop()`` ends the child."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        self.base_url, self.token = self._conn.recv()

    def stop(self, timeout: float = 10.0) -> None:
        self._conn.send("stop")
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
