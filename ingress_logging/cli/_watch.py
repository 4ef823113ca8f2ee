"""Wake the follower when followed files may have changed.

With watchfiles (the ``cli`` extra) a thread per kind of watch waits on the
operating system's file notifications and writes a byte to a pipe; the
follower sleeps in ``select`` on that pipe (and on the stop request's, see
``_stop``), so an idle follower costs next to nothing and a stop wakes it at
once. Without
watchfiles, or when the notifications cannot be had (no inotify watches
left, a file system without them), the follower polls instead: it wakes
every ``POLL_INTERVAL`` seconds and looks. Notifications only say "look
now": the follower also looks every ``RESCAN_INTERVAL`` seconds anyway, so a
missed notification delays a line, never loses it.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Iterable
from typing import Final

from ._stop import StopRequest

__all__ = ["POLL_INTERVAL", "RESCAN_INTERVAL", "Waker"]

POLL_INTERVAL: Final = 0.25
RESCAN_INTERVAL: Final = 2.0


class Waker:
    """``wait()`` returns when something may have changed, or at the interval."""

    def __init__(
        self,
        recursive: Iterable[str],
        flat: Iterable[str],
        *,
        notifications: bool = True,
        stop: StopRequest | None = None,
    ) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._wakers = [self._read] if stop is None else [self._read, stop.fileno()]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.mode = "polling"
        self.problem: str | None = None
        groups = [(sorted(set(recursive)), True), (sorted(set(flat)), False)]
        if notifications:
            try:
                import watchfiles  # noqa: F401
            except ImportError:
                self.problem = "watchfiles is not installed"
            else:
                self.mode = "notifications"
                for paths, deep in groups:
                    if paths:
                        self._start(paths, deep)

    def _start(self, paths: list[str], recursive: bool) -> None:
        thread = threading.Thread(
            target=self._watch, args=(paths, recursive), name="ingress-follow-watch", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _watch(self, paths: list[str], recursive: bool) -> None:
        import watchfiles

        try:
            for _ in watchfiles.watch(
                *paths,
                watch_filter=None,
                debounce=50,
                step=50,
                stop_event=self._stop,
                recursive=recursive,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                self._wake()
        except Exception as exc:  # no watches left, a path gone: poll instead
            if not self._stop.is_set():
                self.problem = f"file notifications failed ({type(exc).__name__}: {exc})"
                self.mode = "polling"
                self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full of wake-ups already
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep until woken, stopped or ``timeout``; polling sleeps at most the poll interval."""
        if self.mode == "polling":
            timeout = min(timeout, POLL_INTERVAL)
        select.select(self._wakers, [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError):  # drained
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if not any(thread.is_alive() for thread in self._threads):
            # A watch thread still alive could write to a closed (or reused) fd.
            os.close(self._read)
            os.close(self._write)
