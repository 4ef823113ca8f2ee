"""Claude Agent SDK messages (``claude_agent_sdk``) to drafts.

The SDK is never imported here unless the application already did: an
object of its classes can only exist once the SDK's module is loaded, so
when ``claude_agent_sdk`` is not in ``sys.modules`` nothing here is one of
them. Its types are then checked with ``isinstance``.

Each SDK message carries what the transcript needs: a sub-agent's messages
name the ``parent_tool_use_id`` of the tool call that started it (they form
a side chain), and messages carry the SDK's ``uuid``, which is kept.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any, Final

from ._shape import Draft

__all__ = ["SKIP", "Skip", "block_of", "draft_of"]

_MODULE: Final = "claude_agent_sdk"


class Skip:
    """An SDK object that is not a transcript message (a stream or rate-limit event)."""

    def __repr__(self) -> str:
        return "SKIP"


SKIP: Final = Skip()


def _loaded() -> bool:
    return _MODULE in sys.modules


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Block")).lower()


def block_of(value: object) -> dict[str, Any] | None:
    """An SDK content block as the API's dict; None when it is not one."""
    if not _loaded():
        return None
    from claude_agent_sdk import TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock

    if isinstance(value, TextBlock):
        return {"type": "text", "text": value.text}
    if isinstance(value, ThinkingBlock):
        return {"type": "thinking", "thinking": value.thinking, "signature": value.signature}
    if isinstance(value, ToolUseBlock):
        return {"type": "tool_use", "id": value.id, "name": value.name, "input": value.input}
    if isinstance(value, ToolResultBlock):
        return _without_none(
            {
                "type": "tool_result",
                "tool_use_id": value.tool_use_id,
                "content": value.content,
                "is_error": value.is_error,
            }
        )
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith(_MODULE)
    ):
        # Blocks added to the SDK later (server tool use, ...): their fields, named by class.
        return {"type": _snake(type(value).__name__), **_without_none(dataclasses.asdict(value))}
    return None


def _blocks(content: object) -> str | list[dict[str, Any]]:
    from ._blocks import content_of

    return content_of(content, block_of)


def _system_text(data: dict[str, Any], fallback: str) -> str:
    for key in ("content", "message", "text", "description"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return fallback


def draft_of(message: object) -> Draft | Skip | None:
    """The draft of an SDK message; ``SKIP`` for SDK events that are not
    messages; None when ``message`` is not from the SDK at all."""
    if not _loaded():
        return None
    from claude_agent_sdk import AssistantMessage, ResultMessage, SystemMessage, UserMessage

    if isinstance(message, UserMessage):
        fields = (
            {} if message.tool_use_result is None else {"toolUseResult": message.tool_use_result}
        )
        return Draft(
            "user",
            {"role": "user", "content": _blocks(message.content)},
            fields,
            uuid=message.uuid,
            thread=message.parent_tool_use_id,
        )
    if isinstance(message, AssistantMessage):
        body = _without_none(
            {
                "id": message.message_id,
                "type": "message",
                "role": "assistant",
                "model": message.model,
                "content": _blocks(message.content),
                "stop_reason": message.stop_reason,
                "usage": message.usage,
            }
        )
        error: dict[str, Any] = {} if message.error is None else {"error": message.error}
        return Draft("assistant", body, error, uuid=message.uuid, thread=message.parent_tool_use_id)
    if isinstance(message, SystemMessage):
        return Draft(
            "system",
            fields={
                "subtype": message.subtype,
                "content": _system_text(message.data, message.subtype),
                "level": "info",
                "data": message.data,
            },
        )
    if isinstance(message, ResultMessage):
        fields = _without_none(
            {
                "subtype": "result",
                "content": message.result or message.subtype,
                "level": "error" if message.is_error else "info",
                "resultSubtype": message.subtype,
                "isError": message.is_error,
                "numTurns": message.num_turns,
                "durationMs": message.duration_ms,
                "durationApiMs": message.duration_api_ms,
                "totalCostUsd": message.total_cost_usd,
                "stopReason": message.stop_reason,
                "usage": message.usage,
            }
        )
        return Draft("system", fields=fields, uuid=message.uuid)
    if type(message).__module__.startswith(_MODULE):
        return SKIP
    return None
