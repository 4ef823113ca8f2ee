"""Auto-configuration: ``OTEL_LOGS_EXPORTER=ingress`` with no code change.

These set OpenTelemetry's global providers, which can be set once per
process, so each runs in a fresh interpreter against the local server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SDK_CONFIGURATOR_APP = """
import sys
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger_provider
from opentelemetry.sdk._configuration import _initialize_components

_initialize_components()
log_provider = get_logger_provider()
exporters = [
    type(p._batch_processor._exporter).__name__
    for p in log_provider._multi_log_record_processor._log_record_processors
]
print("log exporters:", exporters, flush=True)
tracer = trace.get_tracer("autoconf.app")
with tracer.start_as_current_span("auto-span"):
    log_provider.get_logger("autoconf.app").emit(
        body="auto log", severity_number=SeverityNumber.WARN, attributes={"n": 1}
    )
if sys.argv[1] == "shutdown":
    log_provider.shutdown()
    trace.get_tracer_provider().shutdown()
# else: leave it to the interpreter's exit (the providers' and engine's atexit hooks)
"""

INSTRUMENTED_APP = """
import logging
from opentelemetry import trace

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("instrumented.app")
tracer = trace.get_tracer("instrumented.app")
with tracer.start_as_current_span("handle-request"):
    log.warning("inside the request %d", 42)
log.info("after the request")
"""


def _env(server: Any, session_id: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "INGRESS_LOGGING_", "PYTEST_"))
    }
    env.update(
        {
            "OTEL_LOGS_EXPORTER": "ingress",
            "OTEL_TRACES_EXPORTER": "ingress",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=autoconf-test",
            "INGRESS_LOGGING_URL": server.base_url + "/v1/session_ingress/session/{session_id}",
            "INGRESS_LOGGING_TOKEN": server.token,
            "INGRESS_LOGGING_SESSION_ID": session_id,
            "INGRESS_LOGGING_SHUTDOWN_TIMEOUT": "10",
        }
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def instrument() -> Path:
    """The ``opentelemetry-instrument`` command the otel extra installs."""
    path = Path(sys.executable).parent / "opentelemetry-instrument"
    if not path.exists():
        pytest.skip("opentelemetry-instrument is not installed (otel extra)")
    return path


@pytest.mark.parametrize("ending", ["shutdown", "exit"])
def test_sdk_configurator_builds_the_ingress_exporters_from_the_environment(
    ingress_server, tmp_path, ending
):
    app = tmp_path / "app.py"
    app.write_text(SDK_CONFIGURATOR_APP)
    session_id = f"auto-{ending}"
    proc = _run([sys.executable, str(app), ending], _env(ingress_server, session_id), tmp_path)
    assert "log exporters: ['IngressLogExporter']" in proc.stdout
    entries = ingress_server.entries(session_id)
    assert [e["type"] for e in entries] == ["otel_log", "otel_span"]
    log_entry, span_entry = entries
    assert log_entry["body"] == "auto log"
    assert log_entry["severity"] == {"text": "WARN", "number": 13}
    assert log_entry["resource"]["service.name"] == "autoconf-test"
    assert span_entry["name"] == "auto-span"
    assert log_entry["trace_id"] == span_entry["trace_id"]
    assert log_entry["span_id"] == span_entry["span_id"]
    assert span_entry["parentUuid"] == log_entry["uuid"]


def test_opentelemetry_instrument_runs_an_unmodified_app(ingress_server, tmp_path, instrument):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(INSTRUMENTED_APP))
    env = _env(
        ingress_server,
        "instrumented",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    _run([str(instrument), sys.executable, str(app)], env, tmp_path)
    entries = ingress_server.entries("instrumented")
    logs = [e for e in entries if e["type"] == "otel_log"]
    spans = [e for e in entries if e["type"] == "otel_span"]
    assert [e["body"] for e in logs] == ["inside the request 42", "after the request"]
    assert [e["severity"]["text"] for e in logs] == ["WARN", "INFO"]
    assert [e["name"] for e in spans] == ["handle-request"]
    assert logs[0]["trace_id"] == spans[0]["trace_id"]
    assert logs[0]["span_id"] == spans[0]["span_id"]
    assert "trace_id" not in logs[1]
    assert logs[0]["scope"]["name"] == "instrumented.app"


def test_the_issues_command_as_written_ships_an_unmodified_apps_logs(
    ingress_server, tmp_path, instrument
):
    """`OTEL_LOGS_EXPORTER=ingress opentelemetry-instrument python app.py`, nothing
    else named: no otlp default breaks startup, and stdlib logging is bridged."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(INSTRUMENTED_APP))
    env = _env(ingress_server, "as-written", PYTHONWARNINGS="ignore::DeprecationWarning")
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        del env[name]
    proc = _run([str(instrument), sys.executable, str(app)], env, tmp_path)
    assert "Failed to auto initialize" not in proc.stderr
    entries = ingress_server.entries("as-written")
    assert [e["type"] for e in entries] == ["otel_log", "otel_log"]
    assert [e["body"] for e in entries] == ["inside the request 42", "after the request"]


def test_the_logging_bridge_stays_off_when_the_app_says_so(ingress_server, tmp_path, instrument):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(INSTRUMENTED_APP))
    env = _env(
        ingress_server, "bridge-off", OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="false"
    )
    _run([str(instrument), sys.executable, str(app)], env, tmp_path)
    entries = ingress_server.entries("bridge-off")
    assert [e["type"] for e in entries] == ["otel_span"]  # the span; no log records


MANUAL_PROVIDER_APP = """
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from ingress_logging.otel import IngressLogExporter

provider = LoggerProvider()  # not global; built before the exporter (and its engine)
exporter = IngressLogExporter()
provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=60000))
logger = provider.get_logger("manual.app")
logger.emit(body="first")
provider.force_flush()
assert exporter.force_flush(10000)
logger.emit(body="second, still in the batch processor at exit")
"""


def test_a_batch_still_held_at_exit_by_a_non_global_provider_is_delivered(ingress_server, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(MANUAL_PROVIDER_APP)
    _run([sys.executable, str(app)], _env(ingress_server, "manual"), tmp_path)
    entries = ingress_server.entries("manual")
    assert [e["body"] for e in entries] == [
        "first",
        "second, still in the batch processor at exit",
    ]
    # The second entry went through a fresh engine (the first had closed at
    # exit): it knew no head, the server named it (409 with x-last-uuid), and
    # the entry was stored after "first" - though with parentUuid null, since
    # the body was built before the head was learnt. See docs/opentelemetry.md.
