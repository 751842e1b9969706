"""The README's commissions example against `invite run`: a plan, a month of events, every
statement checked against amounts worked out by hand, the month closed and paid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.embedded_redis import free_port
from tests.conftest import wait_for
from tests.edge.cli.test_cli import INVITE, _env, _up, stopped

pytestmark = pytest.mark.servers

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "commissions.py"


def test_the_commissions_example_runs_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*INVITE, "run", "--port", str(port)],
        env=_env(tmp_path, PATH=os.environ.get("PATH", "")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), timeout=60, what="invite run to listen")
        example = subprocess.run(
            [sys.executable, str(EXAMPLE), url, str(tmp_path / "var")],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )
    finally:
        output = stopped(process)
    assert example.returncode == 0, example.stdout + example.stderr + output[-3000:]
    assert "'status': 'paid'" in example.stdout
    assert list((tmp_path / "var").glob("statement-*.pdf"))
    assert "Traceback" not in output
