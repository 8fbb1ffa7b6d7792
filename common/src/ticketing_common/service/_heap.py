"""The start-up heap of a service's process, put out of the garbage collector's sight.

Why, with the figures: BENCHMARKS.md, "What changed since PREVIOUS", "Each service freezes its
start-up heap out of the garbage collector's sight".
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Take what start-up made (modules, models, the app, its clients) out of the garbage
    collector's sight for the life of the process.

    Most of a service's heap is made at start-up and lives as long as it does, yet every full
    collection walked all of it, stopping the event loop while it did, which is how an event
    waited in the tail of propagation. Garbage made later is collected as before. Not in tests,
    which start many apps in one process: what they freeze would stay for the whole run.
    """
    gc.collect()
    gc.freeze()
