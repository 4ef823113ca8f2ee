"""The configurator ``opentelemetry-instrument`` runs to build the SDK.

``opentelemetry-instrument`` configures nothing unless some installed
package registers a configurator. The usual one comes with
opentelemetry-distro, whose distro also makes ``otlp`` the default exporter
of every signal not named: with the otlp exporter not installed, startup
fails and nothing is shipped. This one builds the SDK from the same
``OTEL_*`` variables (a signal that is not named is off), so the documented
command works with nothing else installed::

    OTEL_LOGS_EXPORTER=ingress opentelemetry-instrument python app.py

When the logs go to ``ingress`` and the app has not said otherwise, it also
turns on the SDK's bridge from stdlib ``logging`` (the variable
``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED``): an unmodified app
logs through ``logging``, and "no code change" should mean its records
arrive. Set the variable to ``false`` to keep the bridge off (for example
when the app also attaches ``IngressHandler``, which would ship every
record twice).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator

LOGGING_BRIDGE_VARIABLE = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"
LOGS_EXPORTER_VARIABLE = "OTEL_LOGS_EXPORTER"
EXPORTER_NAME = "ingress"


def logs_go_to_ingress(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    names = environ.get(LOGS_EXPORTER_VARIABLE, "")
    return EXPORTER_NAME in {name.strip().lower() for name in names.split(",")}


class IngressConfigurator(_OTelSDKConfigurator):
    """Registered as the ``ingress`` entry point of ``opentelemetry_configurator``."""

    def _configure(self, **kwargs: Any) -> None:
        if logs_go_to_ingress():
            os.environ.setdefault(LOGGING_BRIDGE_VARIABLE, "true")
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
