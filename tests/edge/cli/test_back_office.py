"""The README's back-office example against `invite run`: signup, events, figures by hand."""

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

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "back_office.py"


def test_the_back_office_example_runs_end_to_end(tmp_path: Path) -> None:
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
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )
    finally:
        output = stopped(process)
    assert example.returncode == 0, example.stdout + example.stderr
    assert "('ftd', 1)" in example.stdout
    assert "Traceback" not in output
