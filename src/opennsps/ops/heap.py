"""Keep the garbage collector's full collections off the start-up heap.

A started gateway holds about 130,000 long-lived objects (modules, FastAPI's routes,
SQLAlchemy's and pydantic's structures). Every full collection walked all of them: about
100 ms with the event loop stopped, several times a minute under ESPF load, which was a
fifth of the ingress's CPU and every slow answer in bench/ingest. Objects that exist once
the gateway has started live until the process ends, so they are moved out of the
collector's view; what is made afterwards is collected as before.
"""

from __future__ import annotations

import gc

from opennsps.logging import get_logger

log = get_logger("opennsps.ops")


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections.

    Returns how many objects were frozen. Only for a process whose start-up objects live
    as long as it does (`opennsps serve`): anything frozen is never freed.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen", objects=frozen)
    return frozen
