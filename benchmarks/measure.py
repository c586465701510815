"""Timing helpers shared by the suites: best-of-N wall time on one core."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_seconds(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``fn``, in seconds (noise only ever adds time)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def comparison(name: str, ours: float, baseline: float, unit: str, baseline_name: str) -> dict[str, Any]:
    """One measurement row: our rate or time next to a baseline's, with their ratio.

    For rates (``unit`` ending in ``/s``) the ratio is ours / baseline (higher is
    better); for times it is baseline / ours (how many times faster we are).
    """
    if unit.endswith("/s"):
        ratio = ours / baseline if baseline else float("inf")
    else:
        ratio = baseline / ours if ours else float("inf")
    return {
        "name": name,
        "unit": unit,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
    }
