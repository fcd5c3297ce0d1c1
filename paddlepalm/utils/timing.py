"""Wall-clock timing with named laps (the ``phases_seconds`` of an example's results.json)."""
import time
from typing import Dict


class Stopwatch:
    """Wall time since creation, with named laps.

    >>> watch = Stopwatch(); ...; watch.lap("train")   # seconds since the previous lap
    """

    def __init__(self) -> None:
        self.start = time.time()
        self.laps: Dict[str, float] = {}

    def lap(self, name: str) -> float:
        """Record and return the seconds (rounded to 0.1) since the previous lap (or the start)."""
        self.laps[name] = round(time.time() - self.start - sum(self.laps.values()), 1)
        return self.laps[name]

    @property
    def seconds(self) -> float:
        """Seconds since creation."""
        return time.time() - self.start
