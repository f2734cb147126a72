"""BuildKit's parser is a Go library, and the Go runtime does not survive fork(): Celery's
prefork pool forks its build workers from a parent that imported the pipeline. The library must
therefore load in the child, on first use, or the child hangs in its first parse."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

# Imports what a Celery parent imports, forks, and parses in the child, as a build worker does.
_SCRIPT = """
import os, sys
import worker.tasks  # the Celery parent imports the tasks, the pipeline and the parser module
assert "dockerfile" not in sys.modules, "the Go parser was loaded at import"
pid = os.fork()
if pid == 0:
    from core.dockerfile.syntax import image_uses
    text = "".join(
        f"FROM python:3.11 AS s{n}\\nRUN echo hi\\nCOPY --from=s{n} /a /b\\n" for n in range(20)
    )
    for _ in range(3000):
        assert image_uses(text)[0].reference == "python:3.11"
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_worker_parses_dockerfiles() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang is the failure this guards against
        check=False,
    )

    assert result.returncode == 0, result.stderr
