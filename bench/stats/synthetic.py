"""Seeded synthetic config histories: what the detector evaluation and tests run on.

A history is one configuration benchmarked night after night. The model,
chosen to match how serving benchmarks are noisy, not to flatter a detector:

* each request's latency is lognormal around the night's level with
  coefficient of variation ``request_cv`` (2-5%), 64-200 requests a night;
* each night shifts all of its requests together by a lognormal night
  effect of standard deviation ``night_sd`` (0.5-1.5%): clocks, thermals,
  neighbours. It exceeds the sampling noise of a night's median, as it does
  on real machines, which is what makes pooled request-level tests lie;
* 2% of nights are slow outliers (half-normal, sd 10%: a noisy neighbour);
* 1% of requests are stragglers, 1.5-3x slower (a GC pause, a preemption);
* throughput is tokens over the sum of request latencies, so stragglers and
  night effects reach it too;
* a step multiplies every latency from ``step_night`` on by ``1 + step``
  (negative = faster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.stats.types import Night

TOKENS_PER_REQUEST = 128
#: Each request's end-to-end time, taken as a fixed multiple of its TTFT.
E2E_OVER_TTFT = 50.0


@dataclass(frozen=True)
class NoiseModel:
    """Ranges are drawn uniformly once per history."""

    request_cv: tuple[float, float] = (0.02, 0.05)
    night_sd: tuple[float, float] = (0.005, 0.015)
    requests: tuple[int, int] = (64, 200)
    outlier_night_rate: float = 0.02
    outlier_night_sd: float = 0.10
    straggler_rate: float = 0.01
    straggler_factor: tuple[float, float] = (1.5, 3.0)


@dataclass(frozen=True)
class History:
    """One simulated configuration: nightly summaries and per-request TTFT."""

    ttft: np.ndarray  # (nights, requests) per-request values, ms
    throughput: np.ndarray  # (nights,) output tokens per second
    step: float
    step_night: int | None
    night_sd: float
    request_cv: float

    @property
    def n_nights(self) -> int:
        return int(self.ttft.shape[0])

    def summary(self, night: int) -> dict[str, float]:
        row = self.ttft[night]
        p50, p99 = np.percentile(row, (50, 99))
        return {
            "ttft_p50_ms": float(p50),
            "ttft_p99_ms": float(p99),
            "output_tokens_per_s": float(self.throughput[night]),
        }

    def night(self, index: int, *, with_requests: bool = True) -> Night:
        requests = {"ttft": self.ttft[index]} if with_requests else {}
        return Night(summary=self.summary(index), requests=requests, label=f"night {index}")

    def nights(self, *, with_requests: bool = True) -> list[Night]:
        return [self.night(i, with_requests=with_requests) for i in range(self.n_nights)]


def simulate(
    rng: np.random.Generator,
    n_nights: int,
    *,
    step: float = 0.0,
    step_night: int | None = None,
    model: NoiseModel | None = None,
) -> History:
    """One history of ``n_nights`` nights; ``step`` applies from ``step_night`` on."""
    model = model or NoiseModel()
    n = int(rng.integers(model.requests[0], model.requests[1] + 1))
    cv = float(rng.uniform(*model.request_cv))
    sigma = math.sqrt(math.log1p(cv * cv))
    night_sd = float(rng.uniform(*model.night_sd))
    level = math.log(float(rng.uniform(20.0, 2000.0)))
    effect = rng.normal(0.0, night_sd, n_nights)
    slow = rng.random(n_nights) < model.outlier_night_rate
    effect[slow] += np.abs(rng.normal(0.0, model.outlier_night_sd, int(slow.sum())))
    if step and step_night is not None:
        effect[step_night:] += math.log1p(step)
    ttft = np.exp(level + effect[:, None] + rng.normal(0.0, sigma, (n_nights, n)))
    stragglers = rng.random((n_nights, n)) < model.straggler_rate
    ttft[stragglers] *= rng.uniform(*model.straggler_factor, int(stragglers.sum()))
    throughput = n * TOKENS_PER_REQUEST / (ttft.sum(axis=1) * E2E_OVER_TTFT / 1e3)
    return History(
        ttft=ttft,
        throughput=throughput,
        step=step,
        step_night=step_night if step else None,
        night_sd=night_sd,
        request_cv=cv,
    )
