"""The default threshold sweep grid (docs/metrics.md#the-threshold-sweep), importable without numpy.

`evaluator.config` builds its schema defaults from these; keeping them apart from
`evaluator.core.poster` lets a command compose and check its config without loading numpy.
"""

from __future__ import annotations

DEFAULT_SWEEP_TIME_TOLERANCES_S = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
DEFAULT_SWEEP_MIN_COSINES = tuple(round(0.05 * i, 2) for i in range(21))
