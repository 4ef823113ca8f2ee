"""Without the ``cli`` extra the command says what to install, in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import sys

    class NoClick:
        # As if click were not installed: the import fails the way Python's does.
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] == "click":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoClick())
    from ingress_logging.cli import main
    main(["show", "some-session"])
    """
)


def test_missing_cli_extra_is_one_line_naming_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: the ingress-logging command needs the 'cli' extra (click is not installed): "
        "pip install 'ingress-logging[cli]'"
    ]
