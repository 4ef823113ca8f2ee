"""A transcript written from Python: exported, shipped elsewhere, shown: all the same entries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from claude_agent_sdk import AssistantMessage, TextBlock, ToolUseBlock, UserMessage

from ingress_logging.server import IngressServer


def _cli(server: IngressServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("ingress-logging")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env.update(INGRESS_LOGGING_BASE_URL=server.base_url, INGRESS_LOGGING_TOKEN=server.token)
    return subprocess.run(
        [str(script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_export_ship_and_show_take_a_recorded_transcript(
    ingress_server: IngressServer, new_transcript, tmp_path: Path
) -> None:
    transcript = new_transcript(cwd="/repo")
    transcript.record(UserMessage(content="Count the files"))
    transcript.record(
        AssistantMessage(
            content=[
                TextBlock(text="Counting."),
                ToolUseBlock(id="toolu_1", name="Bash", input={"command": "ls | wc -l"}),
            ],
            model="claude-test",
        )
    )
    transcript.tool_result("toolu_1", "42")
    transcript.sidechain("helper").assistant("checked twice")
    transcript.record({"role": "assistant", "content": "There are 42 files."})
    transcript.system("turn finished", subtype="result")
    assert transcript.flush(10.0).pending == 0
    original = ingress_server.entries(transcript.session_id)
    assert len(original) == 6

    exported = _cli(ingress_server, tmp_path, "export", transcript.session_id, "-o", "t.jsonl")
    shipped = _cli(ingress_server, tmp_path, "ship", "--session", "copy-of-it", "t.jsonl")
    again = _cli(ingress_server, tmp_path, "ship", "t.jsonl")
    shown = _cli(ingress_server, tmp_path, "show", "copy-of-it")

    assert exported.returncode == 0, exported.stderr
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.startswith("6 sent, 0 skipped")
    assert ingress_server.entries("copy-of-it") == original
    assert again.stdout.startswith("0 sent, 6 skipped")  # its own session holds every entry
    assert shown.returncode == 0, shown.stderr
    for text in ("Count the files", "Counting.", "[tool_use Bash]", "42", "checked twice"):
        assert text in shown.stdout, shown.stdout
