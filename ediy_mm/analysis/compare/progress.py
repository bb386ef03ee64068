"""Progress of a comparison's tasks, with an ETA from its own pace."""
import math
import sys
import time
from typing import Dict, Optional, TextIO

__all__ = ['ProgressMeter', 'clock']


def clock(seconds: float) -> str:
    """``h:mm:ss``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes // 60}:{minutes % 60:02d}:{seconds:02d}'


class ProgressMeter:
    """Progress of the comparison's tasks, with an ETA from its own pace.

    Each task has a planned cost (any unit); the ETA is the time so far
    times the cost left over the cost done.

    Args:
        costs (dict[str, float]): Planned cost of each task.
        stream (TextIO): Where to print. Defaults to ``sys.stdout``.
        every (float): Seconds between two lines of the same task.
            Defaults to 10.
    """

    def __init__(self,
                 costs: Dict[str, float],
                 stream: Optional[TextIO] = None,
                 every: float = 10.0) -> None:
        self.costs = costs
        self.done = dict.fromkeys(costs, 0.0)
        self.stream = stream or sys.stdout
        self.every = every
        self.start = time.time()
        self.last = -math.inf

    def update(self, task: str, fraction: float, note: str = '') -> None:
        """Set the done fraction of ``task``; print at most every
        ``every`` seconds, and always at 0 and 1."""
        self.done[task] = min(max(fraction, 0.0), 1.0) * self.costs[task]
        now = time.time()
        if 0 < fraction < 1 and now - self.last < self.every:
            return
        self.last = now
        done, total = sum(self.done.values()), sum(self.costs.values())
        elapsed = now - self.start
        eta = clock(elapsed * (total - done) / done) if done else '?'
        share = 100 * done / total if total else 100
        print(
            f'[compare {share:3.0f}% | {clock(elapsed)} elapsed | ETA '
            f'{eta}] {task}: {note}',
            file=self.stream,
            flush=True)
