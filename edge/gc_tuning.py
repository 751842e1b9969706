"""The garbage collector fitted to a long-running process of many short-lived objects."""

from __future__ import annotations

import gc
import warnings

# Young collections every 50,000 allocations instead of 700 (docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what exists now (never scanned again) and collect young objects less often.

    Call it once start-up has loaded what lives for the process (the crawler list, the UA
    parser's rules, the app): the hot path and the batcher allocate many objects that are
    short-lived and in no cycle, and with Python's default thresholds the collector kept
    re-scanning everything loaded at start (docs/benchmarks.md, "Pipeline").
    Garbage left by whoever ran before (an unclosed socket collected here) is not start-up's
    fault: its ResourceWarning is not raised from here, even where warnings are errors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
