"""Load shapes for serving benchmarks: closed loop and seeded open-loop arrivals.

Two ways to load an endpoint, both as in vLLM's ``bench serve`` and AIPerf:

* **closed loop** at concurrency C: C clients, each sending its next request
  as soon as the previous one finished. Measures latency at a fixed load;
  the achieved request rate is an output.
* **open loop** at rate R: requests arrive on a schedule that does not wait
  for the server (a real user population), optionally capped at
  ``max_concurrency`` in flight. The rate is an input; queueing shows up in
  TTFT. Inter-arrival gaps are gamma distributed with shape ``burstiness``
  and mean 1/R: shape 1 is a Poisson process (exponential gaps, CV 1),
  below 1 burstier (CV = 1/sqrt(shape) > 1), above 1 more regular.

Schedules are pure functions of (n, rate, burstiness, seed), so two runs of
one configuration offer the server exactly the same arrival pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


def arrival_offsets(n: int, rate: float, *, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Seconds after the start at which each of ``n`` requests arrives.

    The first request arrives at 0 (a measured window that opened on an idle
    gap would only dilute throughput); the ``n - 1`` gaps after it are
    i.i.d. gamma(shape=burstiness, scale=1/(rate*burstiness)), mean 1/rate.
    """
    if n < 0:
        raise ConfigError(f"number of arrivals must be >= 0, got {n}")
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"request rate must be a positive number, got {rate!r}")
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise ConfigError(f"burstiness must be a positive number, got {burstiness!r}")
    import numpy as np

    if n == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n - 1)
    return np.concatenate(([0.0], np.cumsum(gaps)))


def expected_gap_cv(burstiness: float) -> float:
    """Coefficient of variation of the inter-arrival gaps for ``burstiness``."""
    return 1.0 / math.sqrt(burstiness)


@dataclass(frozen=True)
class LoadShape:
    """How a stream backend issues its requests.

    ``request_rate`` set: open loop, capped at ``max_concurrency`` in flight
    (None = uncapped). Otherwise closed loop with ``concurrency`` clients.
    ``max_duration_s`` stops *issuing* requests that late into the phase;
    requests in flight finish normally.
    """

    concurrency: int = 1
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    max_duration_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.request_rate is not None and not (
            math.isfinite(self.request_rate) and self.request_rate > 0
        ):
            raise ConfigError(f"request_rate must be a positive number, got {self.request_rate!r}")
        if not (math.isfinite(self.burstiness) and self.burstiness > 0):
            raise ConfigError(f"burstiness must be a positive number, got {self.burstiness!r}")
        if self.max_duration_s is not None and not self.max_duration_s > 0:
            raise ConfigError(f"max_duration_s must be positive, got {self.max_duration_s!r}")

    @property
    def open_loop(self) -> bool:
        return self.request_rate is not None

    @property
    def in_flight_limit(self) -> int | None:
        """Most requests in flight at once; None when unbounded."""
        return self.max_concurrency if self.open_loop else self.concurrency

    def schedule(self, n: int) -> np.ndarray:
        """Send offsets (seconds) of ``n`` open-loop requests."""
        if self.request_rate is None:
            raise ConfigError("a closed-loop shape has no arrival schedule")
        return arrival_offsets(n, self.request_rate, burstiness=self.burstiness, seed=self.seed)

    def describe(self) -> str:
        if self.request_rate is None:
            text = f"closed loop, concurrency {self.concurrency}"
        else:
            process = (
                "Poisson" if self.burstiness == 1.0 else f"gamma burstiness {self.burstiness:g}"
            )
            cap = f", at most {self.max_concurrency} in flight" if self.max_concurrency else ""
            text = f"open loop, {self.request_rate:g} req/s ({process}){cap}"
        if self.max_duration_s is not None:
            text += f", issuing for at most {self.max_duration_s:g} s"
        return text


__all__ = ["LoadShape", "arrival_offsets", "expected_gap_cv"]
