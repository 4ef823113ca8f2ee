"""Write an agent's conversation as a transcript: ``Transcript(session_id).record(message)``.

Entries have the shape coding agents write locally (``type`` user /
assistant / system, the API ``message``, ``uuid`` and ``parentUuid``
chained, ``sessionId``, ``timestamp``, ``isSidechain``), so ``show``, the
viewer and ``export``/``ship`` treat them like any agent's transcript. They
go through the delivery engine the logging handler uses: never blocking the
agent, in order, exactly once. The Anthropic SDK and the Claude Agent SDK
are optional (extras ``anthropic`` and ``agent-sdk``) and never imported
here: their objects are recognised once the application has them. Guide:
docs/transcripts.md.
"""

from __future__ import annotations

from ._writer import Transcript

__all__ = ["Transcript"]
