"""Serving the edge with granian (the default, fastest measured) or uvicorn."""

from __future__ import annotations

SERVERS = ("granian", "uvicorn")
GRACEFUL_SHUTDOWN_S = 10


def serve(target: str, host: str, port: int, workers: int, server: str = "granian") -> None:
    """Run the app factory `target` until SIGINT/SIGTERM; lifespan shutdown drains the clicks."""
    if server == "uvicorn":
        import uvicorn

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
