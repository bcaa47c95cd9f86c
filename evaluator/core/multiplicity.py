"""Adjusting p-values for testing many slices at once (Holm, Benjamini-Hochberg).

Testing 10 slices at alpha = 0.05 each flags at least one of them by chance in about 40 % of
comparisons between two equally good models. Adjusted p-values fix that: a slice is
significant when its *adjusted* p-value is <= alpha.

- ``holm`` (Holm 1979, step-down Bonferroni) controls the family-wise error rate: the chance
  that any truly unchanged slice is flagged is at most alpha, whatever the dependence between
  the slices. It is uniformly more powerful than plain Bonferroni.
- ``bh`` (Benjamini-Hochberg 1995) controls the false discovery rate: the expected share of
  flagged slices that are false alarms is at most alpha (for independent or positively
  dependent tests). When no slice truly changed this is the same guarantee as Holm's; when
  some did, it flags more of the others.

NaN p-values (slices that were not tested) stay NaN and do not count towards the number of
tests m.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["ADJUSTMENTS", "adjust_p_values", "benjamini_hochberg", "holm"]

ADJUSTMENTS = ("holm", "bh")


def _p_array(p_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a 1-D array, got shape {p.shape}")
    tested = ~np.isnan(p)
    bad = tested & ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        raise ValueError(
            f"p_values must lie in [0, 1] (or be NaN for untested), got {p[bad][:5].tolist()}"
        )
    return p, tested


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values.

    With the m tested p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:
    ``adj_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))``. Rejecting ``adj <= alpha`` is
    Holm's procedure at level alpha. Arguments, result and errors as in `adjust_p_values`.

    Example:
        >>> holm(np.array([0.01, 0.04, 0.03, 0.005])).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    return _adjusted(p_values, _holm_sorted)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values of the step-up procedure).

    With the m tested p-values sorted ascending: ``adj_(i) = min_{j >= i} min(1, m * p_(j) /
    j)``. Rejecting ``adj <= alpha`` is the BH procedure at false discovery rate alpha; the
    values equal ``scipy.stats.false_discovery_control(p, method="bh")``. Arguments, result
    and errors as in `adjust_p_values`.

    Example:
        >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.005])).tolist()
        [0.02, 0.04, 0.04, 0.02]
    """
    return _adjusted(p_values, _bh_sorted)


# The adjustments proper, on the m tested p-values sorted ascending (see holm and
# benjamini_hochberg for the formulas).
def _holm_sorted(p: np.ndarray) -> np.ndarray:
    m = p.shape[0]
    return np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p))


def _bh_sorted(p: np.ndarray) -> np.ndarray:
    m = p.shape[0]
    return np.minimum.accumulate(np.minimum(1.0, m * p / np.arange(1, m + 1))[::-1])[::-1]


def _adjusted(p_values: np.ndarray, adjust: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``adjust`` (ascending p-values -> their adjusted values) to the tested p-values,
    in the input order; NaN (not tested) stays NaN."""
    p, tested = _p_array(p_values)
    out = np.full(p.shape, np.nan)
    values = p[tested]
    if values.shape[0] == 0:
        return out
    order = np.argsort(values, kind="stable")
    adjusted = np.empty(values.shape[0])
    adjusted[order] = adjust(values[order])
    out[tested] = adjusted
    return out


def adjust_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values by ``method``: ``"holm"`` or ``"bh"``.

    Args:
        p_values: Raw p-values, shape (n,); NaN = not tested.
        method: ``"holm"`` (family-wise error) or ``"bh"`` (false discovery rate).

    Returns:
        Adjusted p-values in the input order, shape (n,); NaN where the input is NaN.

    Raises:
        ValueError: An unknown method, an input that is not 1-D, or a p-value outside [0, 1].
    """
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown p-value adjustment {method!r}; use one of {list(ADJUSTMENTS)}")
