"""The process's heap: the cyclic garbage collector tuned for a long-running daemon whose
start-up objects live as long as the process."""

from __future__ import annotations

import gc

# The cyclic GC's first generation after start-up: objects a request or a job leaves behind
# are freed by reference counting; a collection every 700 allocations (CPython's default)
# ran ~750 times in a 5,000-stop firing and cost 1.8 s of it (bench/RESULTS.md).
GC_YOUNG_THRESHOLD = 5_000


def quiet_gc() -> None:
    """The objects of the start-up (modules, config, clients) live as long as the process:
    moved out of the cyclic GC's sight (gc.freeze), so a full collection no longer walks
    them in the middle of a firing (85-130 ms each, just as its first stops go out), and
    young objects collected less often. `graphnap run` and the one-shot commands call it
    once they have started."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
