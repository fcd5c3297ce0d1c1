"""Seeded subsets that keep the original order (``--limit`` in the examples: smoke-test sized data)."""
import random
from typing import Any, List, Optional, Sequence


def subsample(items: Sequence[Any], limit: Optional[int], seed: int = 0) -> List[Any]:
    """At most ``limit`` items drawn with a fixed seed, in their original order (all if None)."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    keep = set(random.Random(seed).sample(range(len(items)), limit))
    return [x for i, x in enumerate(items) if i in keep]
