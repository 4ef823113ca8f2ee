"""Messages given as dicts or as pydantic models (the Anthropic SDK): to drafts.

The Anthropic SDK's ``Message`` and content blocks are pydantic models; the
``messages=[...]`` parameters are dicts whose ``content`` may hold either
dicts or those models (``{"role": "assistant", "content": response.content}``
is the usual way to continue a conversation). Both become the JSON form the
API uses, which is what transcripts store as ``message``. Models are
recognised by the ``ModelDump`` Protocol, so this module never imports the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from ._shape import Draft

__all__ = ["ModelDump", "content_of", "draft_of_mapping", "dump_model"]

#: Key order of an assistant ``message`` in transcripts (the API's order).
_MESSAGE_KEYS: Final = (
    "id",
    "type",
    "role",
    "model",
    "content",
    "stop_reason",
    "stop_sequence",
    "usage",
)


@runtime_checkable
class ModelDump(Protocol):
    """A pydantic model, as the Anthropic SDK's messages and blocks are."""

    def model_dump(self, *, mode: str = ..., exclude_none: bool = ...) -> dict[str, Any]: ...


def dump_model(value: ModelDump) -> dict[str, Any]:
    """The model's JSON form, without the fields it leaves unset (None)."""
    return value.model_dump(mode="json", exclude_none=True)


#: Converts a block that is neither a dict nor a model (an Agent SDK block),
#: or returns None when it does not know it either.
OtherBlock = Callable[[object], dict[str, Any] | None]


def _block(value: object, other: OtherBlock) -> dict[str, Any]:
    if isinstance(value, Mapping):
        block = dict(value)
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            block["content"] = [_block(item, other) for item in block["content"]]
        return block
    if isinstance(value, ModelDump):
        return dump_model(value)
    if isinstance(value, str):
        return {"type": "text", "text": value}
    converted = other(value)
    if converted is None:
        raise TypeError(f"not a content block: {type(value).__name__}")
    return converted


def content_of(value: object, other: OtherBlock) -> str | list[dict[str, Any]]:
    """A message's ``content``: a string, or a list of blocks as dicts."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return [_block(item, other) for item in value]
    raise TypeError(f"content must be a string or a list of blocks, not {type(value).__name__}")


def draft_of_mapping(message: Mapping[str, Any], other: OtherBlock) -> Draft:
    """A ``messages=[...]`` item or a dumped ``Message``: a user or assistant draft."""
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise TypeError(
            f"a message needs role 'user' or 'assistant', got {role!r} "
            "(use system() for system events)"
        )
    if "content" not in message:
        raise TypeError("a message needs 'content'")
    body = dict(message)
    body["content"] = content_of(message["content"], other)
    ordered: dict[str, Any] = {key: body.pop(key) for key in _MESSAGE_KEYS if key in body}
    ordered.update(body)
    return Draft("user" if role == "user" else "assistant", ordered)
