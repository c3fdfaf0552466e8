"""Wall time and peak resident memory per pipeline stage."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psutil


class StageProbe:
    """Records seconds and peak RSS (MB) for each named stage of a run."""

    def __init__(self, interval: float = 0.05):
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self._interval = interval
        self._proc = psutil.Process()

    def _rss_mb(self) -> float:
        # Children count too: Dask local workers and tokenizer pools run outside this process.
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block and sample its peak memory."""
        peak = [self._rss_mb()]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(self._interval):
                peak[0] = max(peak[0], self._rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0), peak[0], self._rss_mb())

    @property
    def total_seconds(self) -> float:
        """Sum of all stage times."""
        return sum(self.seconds.values())

    @property
    def peak_mb(self) -> float:
        """Highest RSS seen in any stage."""
        return max(self.peak_rss_mb.values(), default=self._rss_mb())
