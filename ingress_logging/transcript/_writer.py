"""``Transcript``: an agent loop's messages, appended as transcript entries.

One object per conversation (one session). Each call places one message in
its chain (``parentUuid`` is the entry before it in the same thread: the
main conversation, or one sub-agent's side chain) and hands the entry to the
delivery engine, which never blocks the caller and delivers each session in
order, exactly once. The chain is decided under one lock, in call order, so
the order of the calls is the order of the entries.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from .._frontdoor import EngineLike
from .._session_id import validate_session_id
from ._agent_sdk import Skip, block_of, draft_of
from ._blocks import ModelDump, content_of, draft_of_mapping, dump_model
from ._shape import Draft, build_entry, timestamp

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Transcript"]

#: Key of a chain: None for the main conversation, else the side chain's.
_Thread = str | None


class _Conversation:
    """What a transcript and its side chains share: one owner of the chain heads."""

    def __init__(self, engine: EngineLike, session_id: str, common: dict[str, Any]) -> None:
        self.engine = engine
        self.session_id = session_id
        self.common = common
        self.lock = threading.Lock()
        self.heads: dict[_Thread, str] = {}

    def append(self, draft: Draft, thread: _Thread, extra: Mapping[str, Any]) -> str:
        uuid = draft.uuid or str(uuidlib.uuid4())
        with self.lock:
            entry = build_entry(
                draft,
                uuid=uuid,
                parent_uuid=self.heads.get(thread),
                session_id=self.session_id,
                is_sidechain=thread is not None,
                when=timestamp(),
                common={**self.common, **extra},
            )
            self.heads[thread] = uuid
            # Under the lock: entries reach the engine in chain order.
            self.engine.submit(self.session_id, entry)
        return uuid


class Transcript:
    """Write an agent's conversation to one session, in the shape agents write locally.

    >>> transcript = Transcript("run-42")  # doctest: +SKIP
    >>> transcript.record({"role": "user", "content": "hello"})  # doctest: +SKIP
    >>> transcript.record(response)  # an anthropic.types.Message  # doctest: +SKIP

    Args:
        session_id: the session to write (validated); default: a new uuid.
        url / token / base_api_url / plugins: where and how to deliver, as
            for ``IngressHandler``; equal settings share the handler's engine.
        engine: an explicit engine (anything with ``submit`` and ``flush``)
            instead of those settings.
        cwd: the working directory to note on every entry (agents note it).
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        url: str | None = None,
        token: str | Callable[[], str | None] | None = None,
        base_api_url: str | None = None,
        plugins: Any = None,
        engine: EngineLike | None = None,
        cwd: str | None = None,
    ) -> None:
        sid = validate_session_id(session_id) if session_id is not None else str(uuidlib.uuid4())
        if engine is None:
            from ..delivery import get_shared_engine  # httpx loads only when one is built

            # The handler's keyword set with its defaults: equal settings, one engine.
            engine = get_shared_engine(
                url_template=url, token=token, base_api_url=base_api_url, plugins=plugins
            )
        elif any(v is not None for v in (url, token, base_api_url, plugins)):
            raise TypeError("pass either engine= or the engine's settings, not both")
        common = {} if cwd is None else {"cwd": cwd}
        self._conversation = _Conversation(engine, sid, common)
        self._thread: _Thread = None
        self._extra: dict[str, Any] = {}

    @classmethod
    def _side(cls, conversation: _Conversation, thread: str, extra: dict[str, Any]) -> Transcript:
        side = cls.__new__(cls)
        side._conversation = conversation
        side._thread = thread
        side._extra = extra
        return side

    @property
    def session_id(self) -> str:
        """The session this transcript writes to."""
        return self._conversation.session_id

    @property
    def engine(self) -> EngineLike:
        """The delivery engine (``flush``, ``stats``)."""
        return self._conversation.engine

    @property
    def is_sidechain(self) -> bool:
        """True for a sub-agent's side chain (see :meth:`sidechain`)."""
        return self._thread is not None

    @property
    def last_uuid(self) -> str | None:
        """The ``uuid`` of this thread's last entry (None before the first)."""
        with self._conversation.lock:
            return self._conversation.heads.get(self._thread)

    def sidechain(self, agent_id: str | None = None) -> Transcript:
        """A sub-agent's thread in the same session: ``isSidechain: true``, its own chain.

        Its first entry has ``parentUuid: null``, as agents write a side chain;
        ``agent_id`` is noted on each of its entries as ``agentId``.
        """
        thread = f"agent:{agent_id}" if agent_id is not None else f"side:{uuidlib.uuid4()}"
        extra = {} if agent_id is None else {"agentId": agent_id}
        return Transcript._side(self._conversation, thread, extra)

    # -- one call per message ---------------------------------------------

    def record(self, message: object) -> str | None:
        """Append one message; returns its entry's ``uuid``.

        Accepts a ``messages=[...]`` item (``{"role": ..., "content": ...}``,
        content a string or blocks as dicts or SDK models), an Anthropic SDK
        ``Message`` (or its ``model_dump()``), or a Claude Agent SDK message
        (``UserMessage``, ``AssistantMessage``, ``SystemMessage``,
        ``ResultMessage``). Other Agent SDK events (stream and rate-limit
        events) are not messages: nothing is appended and None is returned.
        Raises ``TypeError`` for anything else.
        """
        draft = draft_of(message)
        if isinstance(draft, Skip):
            return None
        if draft is None:
            if isinstance(message, Mapping):
                draft = draft_of_mapping(message, block_of)
            elif isinstance(message, ModelDump):
                draft = draft_of_mapping(dump_model(message), block_of)
            else:
                raise TypeError(
                    f"cannot record a {type(message).__name__}: pass a message dict, an "
                    "Anthropic SDK Message or a Claude Agent SDK message"
                )
        return self._append(draft)

    def user(self, content: str | Sequence[object]) -> str:
        """A user message (text, or content blocks)."""
        return self._append(
            Draft("user", {"role": "user", "content": content_of(content, block_of)})
        )

    def assistant(
        self,
        content: str | Sequence[object],
        *,
        model: str | None = None,
        message_id: str | None = None,
        stop_reason: str | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> str:
        """An assistant message: text, ``thinking`` and ``tool_use`` blocks."""
        blocks = content_of([content] if isinstance(content, str) else content, block_of)
        body: dict[str, Any] = {"type": "message", "role": "assistant"}
        if message_id is not None:
            body = {"id": message_id, **body}
        if model is not None:
            body["model"] = model
        body["content"] = blocks
        if stop_reason is not None:
            body["stop_reason"] = stop_reason
        if usage is not None:
            body["usage"] = dict(usage)
        return self._append(Draft("assistant", body))

    def tool_result(
        self, tool_use_id: str, content: str | Sequence[object], *, is_error: bool = False
    ) -> str:
        """The result of a tool call, as agents write it: a user message with a
        ``tool_result`` block."""
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": content_of(content, block_of),
            "is_error": is_error,
        }
        return self._append(Draft("user", {"role": "user", "content": [block]}))

    def system(
        self, content: str, *, subtype: str = "informational", level: str = "info", **fields: Any
    ) -> str:
        """A system event (``type: system``) with its ``subtype`` and ``level``."""
        return self._append(
            Draft(
                "system", fields={"subtype": subtype, "content": content, "level": level, **fields}
            )
        )

    def _append(self, draft: Draft) -> str:
        if draft.thread is not None and self._thread is None:
            # A sub-agent's message (the Agent SDK names the tool call that started it).
            return self._conversation.append(draft, f"tool:{draft.thread}", self._extra)
        return self._conversation.append(draft, self._thread, self._extra)

    # -- delivery ------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds until every entry so far is delivered;
        returns the engine's ``FlushResult``."""
        return self._conversation.engine.flush(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()

    def __repr__(self) -> str:
        side = ", sidechain" if self.is_sidechain else ""
        return f"<Transcript session_id={self.session_id!r}{side}>"
