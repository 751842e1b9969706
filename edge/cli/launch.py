"""Serving the edge with uvicorn (the default, measured faster for it) or granian."""

from __future__ import annotations

import signal
import sys
from types import FrameType

SERVERS = ("uvicorn", "granian")
GRACEFUL_SHUTDOWN_S = 10


def serve(target: str, host: str, port: int, workers: int, server: str = "uvicorn") -> None:
    """Run the app factory `target` until SIGINT/SIGTERM; lifespan shutdown drains the clicks."""
    if server == "uvicorn":
        import uvicorn

        # uvicorn drains on SIGTERM, then re-raises the signal under the handler it found: make
        # that a clean exit, so callers' cleanup (the private Redis of `invite run`) still runs.
        signal.signal(signal.SIGTERM, _exit_cleanly)

        uvicorn.run(
            target, factory=True, host=host, port=port, workers=workers, access_log=False,
            lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False,
        )
        return
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        target, factory=True, address=host, port=port, workers=workers,
        interface=Interfaces.ASGI, log_access=False, workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
        respawn_failed_workers=True,
    ).serve()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
