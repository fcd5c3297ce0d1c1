"""Truncation strategies as pure functions on token lists.

``head`` keeps the beginning, ``tail`` keeps the end, ``head+tail`` keeps the first quarter of
the budget and the end (Sun et al. 2019 found head+tail best for long-text classification).
Pairs are first shortened longest-first, then each side is cut with the chosen strategy.
"""
from typing import List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
STRATEGIES = ("head", "tail", "head+tail")


def keep_indices(length: int, budget: int, strategy: str = "head",
                 head_ratio: float = 0.25) -> List[int]:
    """Indices of the tokens kept when cutting ``length`` tokens down to ``budget``."""
    if strategy not in STRATEGIES:
        raise ValueError("unknown truncation strategy %r; expected one of %s"
                         % (strategy, ", ".join(STRATEGIES)))
    budget = max(0, budget)
    if length <= budget:
        return list(range(length))
    if strategy == "head":
        return list(range(budget))
    if strategy == "tail":
        return list(range(length - budget, length))
    n_head = int(budget * head_ratio)
    n_tail = budget - n_head
    return list(range(n_head)) + list(range(length - n_tail, length))


def pair_budgets(len_a: int, len_b: Optional[int], budget: int) -> Tuple[int, int]:
    """Split ``budget`` between two sequences longest-first (the longer one loses tokens first)."""
    if len_b is None:
        return min(len_a, budget), 0
    a, b = len_a, len_b
    while a + b > budget:
        if a >= b:
            a -= 1
        else:
            b -= 1
    return a, b


def truncate(seq: Sequence[T], budget: int, strategy: str = "head") -> List[T]:
    return [seq[i] for i in keep_indices(len(seq), budget, strategy)]
