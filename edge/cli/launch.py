"""Serving an app factory with uvicorn (the default, faster for the edge) or granian.

The factory is a picklable callable (a module-level function bound to the Settings the command
built), so worker processes get the parent's settings as they are: nothing is re-read from the
environment or passed through it.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from edge.logs import server_logging
from edge.shutdown import Watchdog

SERVERS = ("uvicorn", "granian")
GRACEFUL_SHUTDOWN_S = 10
# Connections drain (GRACEFUL_SHUTDOWN_S), the batcher of `invite run` stops (30 s at most), the
# clicks and the outbox flush (5 s each), the private Redis stops (10 s): past this, it hangs.
SHUTDOWN_WATCHDOG_S = 90.0
EDGE_URL_FILE = "edge.url"  # where `invite run` tells the other commands its address

AppFactory = Callable[[], Any]


def serve(
    factory: AppFactory, host: str, port: int, workers: int, server: str = "uvicorn",
    log_format: str = "text", watchdog: Watchdog | None = None,
) -> None:
    """Run the app `factory()` builds until SIGINT/SIGTERM; lifespan shutdown drains the clicks.
    With log_format "json" the server's own lines are JSON too. A single uvicorn process that
    has not stopped SHUTDOWN_WATCHDOG_S after the signal exits by force (`watchdog`)."""
    if server == "uvicorn":
        _serve_uvicorn(factory, host, port, workers, server_logging(log_format),
                       watchdog or Watchdog(SHUTDOWN_WATCHDOG_S))
    else:
        _serve_granian(factory, host, port, workers, server_logging(log_format))


def _serve_uvicorn(
    factory: AppFactory, host: str, port: int, workers: int, logging: dict[str, Any] | None,
    watchdog: Watchdog,
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    class WatchedServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            watchdog.arm()
            super().handle_exit(sig, frame)

    # uvicorn drains on SIGTERM, then re-raises the signal under the handler it found: make
    # that a clean exit, so callers' cleanup (the private Redis of `invite run`) still runs.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    config = uvicorn.Config(
        factory, factory=True, host=host, port=port, workers=workers, access_log=False,
        lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, server_header=False,
        log_config=logging or uvicorn.config.LOGGING_CONFIG,
    )
    if workers > 1:
        # What uvicorn.run does for workers, minus its demand for an import string: the
        # factory (and the settings bound to it) is pickled into each spawned worker.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    WatchedServer(config).run()


def _serve_granian(
    factory: AppFactory, host: str, port: int, workers: int, logging: dict[str, Any] | None
) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "invite-edge", address=host, port=port, workers=workers, interface=Interfaces.ASGI,
        log_access=False, workers_kill_timeout=GRACEFUL_SHUTDOWN_S, respawn_failed_workers=True,
        log_dictconfig=logging,
    ).serve(target_loader=partial(_load, factory), wrap_loader=False)


def _load(factory: AppFactory, *_target: Any, **_options: Any) -> Any:
    """Granian's loader, in each worker: the app the factory builds."""
    return factory()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def running_edge_url(data_dir: Path) -> str:
    """The address `invite run` on this data dir announced, else the default one."""
    try:
        return (data_dir / EDGE_URL_FILE).read_text().strip()
    except FileNotFoundError:
        return "http://127.0.0.1:8000"
