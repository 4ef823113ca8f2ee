"""``Transcript``: agent messages in, transcript entries on a real server out."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from anthropic.types import (
    Message,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)

from ingress_logging.server import IngressServer
from ingress_logging.transcript import Transcript

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: The envelope keys agents write on user/assistant entries (a transcript
#: entry may have more of them; it has none besides these and ``message``).
ENVELOPE = {
    "parentUuid",
    "isSidechain",
    "userType",
    "cwd",
    "sessionId",
    "version",
    "type",
    "message",
    "uuid",
    "timestamp",
    "agentId",
    "toolUseResult",
}


def reply(*content, stop_reason: str = "end_turn", message_id: str = "msg_1") -> Message:
    return Message(
        id=message_id,
        type="message",
        role="assistant",
        model="claude-test",
        content=list(content),
        stop_reason=stop_reason,
        stop_sequence=None,
        usage=Usage(input_tokens=10, output_tokens=5),
    )


def delivered(transcript: Transcript, server: IngressServer) -> list[dict]:
    result = transcript.flush(10.0)
    assert (result.pending, result.failed, result.dropped) == (0, 0, 0), result
    return server.entries(transcript.session_id)


def assert_chained(entries: list[dict]) -> None:
    parent = None
    for entry in entries:
        assert entry["parentUuid"] == parent
        parent = entry["uuid"]


def test_an_anthropic_agent_loop_becomes_a_chained_transcript(
    ingress_server: IngressServer, new_transcript
) -> None:
    transcript = new_transcript(cwd="/work/repo")
    question = {"role": "user", "content": "What is in this directory?"}
    first = reply(
        ThinkingBlock(type="thinking", thinking="list it", signature="sig"),
        TextBlock(type="text", text="Let me look."),
        ToolUseBlock(type="tool_use", id="toolu_1", name="Bash", input={"command": "ls"}),
        stop_reason="tool_use",
    )
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py\nb.py"}],
    }
    last = reply(TextBlock(type="text", text="Two files."), message_id="msg_2")

    uuids = [transcript.record(m) for m in (question, first, result, last)]
    entries = delivered(transcript, ingress_server)

    assert [e["type"] for e in entries] == ["user", "assistant", "user", "assistant"]
    assert [e["uuid"] for e in entries] == uuids
    assert_chained(entries)
    assert entries[0]["message"] == question
    assert entries[1]["message"] == first.model_dump(mode="json", exclude_none=True)
    assert list(entries[1]["message"])[:5] == ["id", "type", "role", "model", "content"]
    assert entries[2]["message"] == result
    assert entries[3]["message"]["content"] == [{"type": "text", "text": "Two files."}]
    for entry in entries:
        assert entry["sessionId"] == transcript.session_id
        assert entry["isSidechain"] is False
        assert entry["cwd"] == "/work/repo"
        assert TIMESTAMP.match(entry["timestamp"])
        assert set(entry) <= ENVELOPE


def test_params_holding_sdk_blocks_are_recorded_as_their_json(
    ingress_server: IngressServer, new_transcript
) -> None:
    transcript = new_transcript()
    response = reply(
        TextBlock(type="text", text="ok"),
        ToolUseBlock(type="tool_use", id="toolu_9", name="Read", input={"path": "x"}),
    )

    transcript.record({"role": "assistant", "content": response.content})
    transcript.record(response.model_dump())
    entries = delivered(transcript, ingress_server)

    assert entries[0]["message"] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {"path": "x"}},
        ],
    }
    assert entries[1]["message"] == response.model_dump()  # a dict is recorded as given


def test_claude_agent_sdk_messages_with_a_sub_agent(
    ingress_server: IngressServer, new_transcript
) -> None:
    from claude_agent_sdk import (
        AssistantMessage,
        ResultMessage,
        SystemMessage,
        TextBlock,
        ThinkingBlock,
        ToolResultBlock,
        ToolUseBlock,
        UserMessage,
    )
    from claude_agent_sdk.types import StreamEvent

    transcript = new_transcript()
    sid = transcript.session_id
    messages = [
        SystemMessage(subtype="init", data={"model": "claude-test", "cwd": "/repo"}),
        UserMessage(content="Research the parser", uuid="u-1"),
        AssistantMessage(
            content=[
                ThinkingBlock(thinking="delegate", signature="s"),
                ToolUseBlock(id="toolu_task", name="Task", input={"prompt": "read parser.py"}),
            ],
            model="claude-test",
            message_id="msg_a",
            stop_reason="tool_use",
            uuid="a-1",
        ),
        # The sub-agent's own conversation: a side chain.
        UserMessage(content="read parser.py", parent_tool_use_id="toolu_task", uuid="s-1"),
        AssistantMessage(
            content=[TextBlock(text="It parses JSON.")],
            model="claude-test",
            parent_tool_use_id="toolu_task",
            uuid="s-2",
        ),
        StreamEvent(uuid="ev-1", session_id=sid, event={"type": "message_start"}),
        UserMessage(
            content=[ToolResultBlock(tool_use_id="toolu_task", content="It parses JSON.")],
            uuid="u-2",
            tool_use_result={"status": "completed"},
        ),
        AssistantMessage(content=[TextBlock(text="Done.")], model="claude-test", uuid="a-2"),
        ResultMessage(
            subtype="success",
            duration_ms=1200,
            duration_api_ms=900,
            is_error=False,
            num_turns=2,
            session_id=sid,
            total_cost_usd=0.01,
            result="Done.",
            uuid="r-1",
        ),
    ]

    returned = [transcript.record(m) for m in messages]
    entries = delivered(transcript, ingress_server)

    assert returned[5] is None  # a stream event is not a message
    assert len(entries) == len(messages) - 1
    by_uuid = {e["uuid"]: e for e in entries}
    main = [e for e in entries if not e["isSidechain"]]
    side = [e for e in entries if e["isSidechain"]]
    assert [e["uuid"] for e in side] == ["s-1", "s-2"]
    assert_chained(side)  # its own chain, starting at null
    assert_chained(main)
    assert [e["uuid"] for e in main][1:] == ["u-1", "a-1", "u-2", "a-2", "r-1"]
    assert main[0]["type"] == "system"
    assert main[0]["subtype"] == "init"
    assert main[0]["data"] == {"model": "claude-test", "cwd": "/repo"}
    assert by_uuid["a-1"]["message"] == {
        "id": "msg_a",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "thinking", "thinking": "delegate", "signature": "s"},
            {
                "type": "tool_use",
                "id": "toolu_task",
                "name": "Task",
                "input": {"prompt": "read parser.py"},
            },
        ],
        "stop_reason": "tool_use",
    }
    assert by_uuid["u-2"]["message"]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_task", "content": "It parses JSON."}
    ]
    assert by_uuid["u-2"]["toolUseResult"] == {"status": "completed"}
    assert by_uuid["s-1"]["message"] == {"role": "user", "content": "read parser.py"}
    result = by_uuid["r-1"]
    assert (result["type"], result["subtype"], result["content"]) == ("system", "result", "Done.")
    assert (result["level"], result["numTurns"], result["totalCostUsd"]) == ("info", 2, 0.01)


def test_the_helpers_and_an_explicit_sidechain(
    ingress_server: IngressServer, new_transcript
) -> None:
    transcript = new_transcript()
    transcript.user("hello")
    transcript.assistant([{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}], model="m")
    helper = transcript.sidechain(agent_id="a1b2")
    helper.user("sub task")
    helper.assistant("sub answer")
    transcript.tool_result("t1", "exit 0", is_error=False)
    transcript.system("Conversation compacted", subtype="compact_boundary")

    entries = delivered(transcript, ingress_server)

    side = [e for e in entries if e["isSidechain"]]
    main = [e for e in entries if not e["isSidechain"]]
    assert_chained(side)
    assert_chained(main)
    assert {e["agentId"] for e in side} == {"a1b2"}
    assert side[1]["message"]["content"] == [{"type": "text", "text": "sub answer"}]
    assert main[2]["message"]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": "exit 0",
        "is_error": False,
    }
    assert (main[3]["type"], main[3]["subtype"], main[3]["level"]) == (
        "system",
        "compact_boundary",
        "info",
    )
    assert helper.last_uuid == side[-1]["uuid"]
    assert transcript.last_uuid == main[-1]["uuid"]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"role": "system", "content": "x"}, "role 'user' or 'assistant'"),
        ({"role": "user"}, "needs 'content'"),
        ({"role": "user", "content": 3}, "content must be a string or a list"),
        ({"role": "user", "content": [object()]}, "not a content block: object"),
        (42, "cannot record a int"),
    ],
)
def test_what_is_not_a_message_is_a_clear_type_error_and_nothing_is_sent(
    ingress_server: IngressServer, new_transcript, message, words
) -> None:
    transcript = new_transcript()

    with pytest.raises(TypeError, match=re.escape(words)):
        transcript.record(message)
    transcript.user("after")

    entries = delivered(transcript, ingress_server)
    assert [e["message"]["content"] for e in entries] == ["after"]
    assert entries[0]["parentUuid"] is None


def test_recording_never_waits_for_the_server_and_an_outage_loses_nothing(
    ingress_server: IngressServer, new_transcript
) -> None:
    transcript = new_transcript()
    ingress_server.stop()

    uuids = [transcript.user(f"message {i}") for i in range(20)]
    assert ingress_server.entries(transcript.session_id) == []
    ingress_server.start()

    entries = delivered(transcript, ingress_server)
    assert [e["uuid"] for e in entries] == uuids
    assert_chained(entries)


def test_settings_build_the_shared_engine_and_conflicts_are_refused(
    ingress_server: IngressServer,
) -> None:
    from ingress_logging.delivery import get_shared_engine

    transcript = Transcript(base_api_url=ingress_server.base_url, token=ingress_server.token)
    transcript.user("via the shared engine")

    assert transcript.engine is get_shared_engine(
        url_template=None,
        token=ingress_server.token,
        base_api_url=ingress_server.base_url,
        plugins=None,
    )
    assert [e["message"]["content"] for e in delivered(transcript, ingress_server)] == [
        "via the shared engine"
    ]
    from ingress_logging import IngressHandler

    handler = IngressHandler(base_api_url=ingress_server.base_url, token=ingress_server.token)
    try:
        assert handler.engine is transcript.engine  # one engine, one chain per session
    finally:
        handler.close()
    with pytest.raises(TypeError, match="either engine= or"):
        Transcript(engine=transcript.engine, token="t")
    with pytest.raises(ValueError):
        Transcript("bad/session id", engine=transcript.engine)


def test_the_sdks_are_not_imported_unless_the_application_uses_them() -> None:
    code = textwrap.dedent(
        """
        import sys
        from ingress_logging.transcript import Transcript

        class Engine:
            def __init__(self): self.entries = []
            def submit(self, session_id, entry, *, record=None, size_hint=None):
                self.entries.append(entry); return True
            def flush(self, timeout=None): return None

        engine = Engine()
        t = Transcript("s-1", engine=engine)
        t.record({"role": "user", "content": "hi"})
        t.record({"role": "assistant", "content": [{"type": "text", "text": "yo"}]})
        assert len(engine.entries) == 2, engine.entries
        print(sorted(m for m in ("anthropic", "claude_agent_sdk", "pydantic") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_threads_recording_at_once_keep_one_chain_in_delivery_order(
    ingress_server: IngressServer, new_transcript
) -> None:
    import threading

    transcript = new_transcript()
    barrier = threading.Barrier(4)

    def agent(n: int) -> None:
        barrier.wait()
        for i in range(50):
            transcript.user(f"thread {n} message {i}")

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = delivered(transcript, ingress_server)

    assert len(entries) == 200
    assert_chained(entries)  # stored order is the chain's order
    for n in range(4):
        mine = [
            e["message"]["content"]
            for e in entries
            if e["message"]["content"].startswith(f"thread {n} ")
        ]
        assert mine == [f"thread {n} message {i}" for i in range(50)]
