"""Keep delivery threads off the logging module's lock while ``flush`` waits.

``logging.config.dictConfig`` holds the module lock (``logging._lock``) while
it flushes the old handlers, and it has just cleared every logger's level
cache. On a cache miss ``Logger.isEnabledFor`` takes that same lock - and a
worker's request makes httpx and httpcore ask ``isEnabledFor`` on every
request. So a flush that waits for the workers would wait for a lock its
own thread holds: a deadlock that only the flush timeout breaks.

The fix: before ``flush`` waits, it fills those caches itself. The flushing
thread either holds the lock already (re-entrant, so this is safe) or takes
it briefly. The workers then find the answers cached and never need the lock.
Diagnostics, the other path into logging, never run on a worker at all
(see ``_reporter``).
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["warm_logging_caches"]

#: Loggers consulted on the delivery path (and their children).
_PREFIXES: Final = ("httpx", "httpcore", "hpack", "h11", "ingress_logging")
_LEVELS: Final = (
    logging.DEBUG,
    logging.INFO,
    logging.WARNING,
    logging.ERROR,
    logging.CRITICAL,
)


def warm_logging_caches() -> None:
    """Answer ``isEnabledFor`` once per level for every delivery-path logger."""
    manager = logging.Logger.manager
    try:
        names = [
            name
            for name, obj in list(manager.loggerDict.items())
            if isinstance(obj, logging.Logger) and name.split(".", 1)[0] in _PREFIXES
        ]
    except RuntimeError:  # the dict changed while copying; the workers will cope
        return
    for name in names:
        logger = manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger):
            for level in _LEVELS:
                logger.isEnabledFor(level)
