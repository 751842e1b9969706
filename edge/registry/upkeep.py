"""The registry's upkeep when an edge starts: aliases folded to lower case, listing indexes built
(both once for data stored by earlier versions; afterwards every write keeps them)."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from edge.registry.partners import PartnerRegistry

log = logging.getLogger("invite.registry")

RETRY_S = 1.0


async def prepare_registry(registry: PartnerRegistry, retry_s: float = RETRY_S) -> None:
    """Run the upkeep, again while Redis cannot answer (an edge may start before its Redis)."""
    warned = False
    while True:
        try:
            await registry.prepare()
            return
        except (RedisError, OSError) as exc:
            if not warned:
                log.warning("registry upkeep waits for Redis (%s); retrying", type(exc).__name__)
                warned = True
        except Exception:
            log.exception("registry upkeep failed; the next start tries again")
            return
        await asyncio.sleep(retry_s)
