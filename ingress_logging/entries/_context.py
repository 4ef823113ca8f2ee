"""The ambient session id: ``with ingress_logging.session("id"):``.

A record names its session in one of three ways (first found wins):
``extra={"session_id": ...}``, the context variable set here, or the
handler's default. The variable is a :class:`contextvars.ContextVar`, so it
follows the rules of contextvars exactly: every asyncio task gets a copy of
the context it was created in, ``asyncio.to_thread`` and
``contextvars.copy_context().run`` carry it into another thread, and a plain
``threading.Thread`` starts without it (set it again inside the thread).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast, overload

from .._session_id import validate_session_id

__all__ = ["current_session_id", "session"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The session id records default to in the current context (None: unset).
SESSION_ID_VAR: Final[ContextVar[str | None]] = ContextVar(
    "ingress_logging_session_id", default=None
)


def current_session_id() -> str | None:
    """The session id set by the innermost active ``session(...)``, or None."""
    return SESSION_ID_VAR.get()


class session:
    """Context manager (and decorator) that sets the ambient session id.

    The id is validated here, when the block is entered in the caller's own
    code, so a bad id raises :class:`~ingress_logging.InvalidSessionIdError`
    at its source instead of turning every later record into a drop.

    As a decorator it wraps plain and ``async`` functions; every call enters
    a fresh context-manager instance, so one decorated function may run in
    many threads and tasks at once.
    """

    __slots__ = ("_session_id", "_tokens")

    def __init__(self, session_id: str) -> None:
        self._session_id = validate_session_id(session_id)
        self._tokens: list[Token[str | None]] = []

    @property
    def session_id(self) -> str:
        """The (validated) session id this block sets."""
        return self._session_id

    def __repr__(self) -> str:
        return f"session({self._session_id!r})"

    def __enter__(self) -> str:
        self._tokens.append(SESSION_ID_VAR.set(self._session_id))
        return self._session_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        SESSION_ID_VAR.reset(self._tokens.pop())

    @overload
    def __call__(
        self, func: Callable[_P, Coroutine[Any, Any, _R]]
    ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...

    @overload
    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]: ...

    def __call__(self, func: Callable[_P, Any]) -> Callable[_P, Any]:
        session_id = self._session_id
        if inspect.iscoroutinefunction(func):
            coro_func = cast("Callable[_P, Coroutine[Any, Any, Any]]", func)

            @functools.wraps(func)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with session(session_id):
                    return await coro_func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            with session(session_id):
                return func(*args, **kwargs)

        return wrapper
