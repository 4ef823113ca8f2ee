"""``python -m ingress_logging.cli``: the same as the ``ingress-logging`` command."""

from __future__ import annotations

from . import main

main()
