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
  night effects reach it too; each request's end-to-end time is a fixed
  multiple of its TTFT (what throughput is made of);
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
        row = self.ttft[index]
        requests = {"ttft": row, "e2e": row * E2E_OVER_TTFT} if with_requests else {}
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


# -- campaigns: configurations that share a night ---------------------------------------------


@dataclass(frozen=True)
class CampaignNoise:
    """A campaign of configurations of one device class, night after night.

    Each configuration keeps the per-request noise of :class:`NoiseModel`
    (CV, stragglers, 64-200 requests) and its own night-effect sd (0.5-1.5%),
    which is split in three independent parts:

    * ``common_share`` of its variance is shared by every configuration of
      the campaign that night (the cluster, a shared filesystem, firmware state);
    * ``host_share`` is shared by everything that runs on the same host that
      night: the configurations scheduled there, and a confirm run if it
      lands there (the node's clocks, thermals, neighbours);
    * the rest is the run's own (its process: allocator, graph compilation,
      preemptions), drawn afresh by a re-run.

    Configurations are spread over ``hosts`` at random each night, as a Celery
    queue does. Outliers come in two kinds: a slow run (``outlier_run_rate``,
    its own) and a slow host-night (``bad_host_rate``, everything on that
    host), each half-normal with sd ``outlier_sd``. The default split (a third
    each) is an assumption, not a measurement: ``benchmarks/detector_eval.py
    --shares`` shows the figures under other splits.
    """

    base: NoiseModel = NoiseModel()
    configs: int = 8
    hosts: int = 2
    common_share: float = 1 / 3
    host_share: float = 1 / 3
    outlier_run_rate: float = 0.01
    bad_host_rate: float = 0.01
    outlier_sd: float = 0.10

    def __post_init__(self) -> None:
        if not (self.common_share >= 0 and 0 <= self.host_share <= 1 - self.common_share):
            raise ValueError("common_share + host_share must lie in [0, 1]")


@dataclass(frozen=True)
class _Config:
    level: float  # log ms
    sigma: float  # per-request log sd
    night_sd: float
    n: int


class CampaignHistory:
    """One simulated campaign: every configuration's nights, and confirm runs on demand.

    ``steps[c]`` is the log shift of configuration ``c`` from each night on
    (a step is a code change: it follows the configuration into a re-run).
    Confirm runs are drawn from their own seeded stream, so the same
    (configuration, night) always gives the same re-run.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n_nights: int,
        noise: CampaignNoise,
        steps: np.ndarray | None = None,
    ) -> None:
        base = noise.base
        self.noise = noise
        self.n_nights = n_nights
        self.configs = []
        for _ in range(noise.configs):
            cv = float(rng.uniform(*base.request_cv))
            self.configs.append(
                _Config(
                    level=math.log(float(rng.uniform(20.0, 2000.0))),
                    sigma=math.sqrt(math.log1p(cv * cv)),
                    night_sd=float(rng.uniform(*base.night_sd)),
                    n=int(rng.integers(base.requests[0], base.requests[1] + 1)),
                )
            )
        c, h, t = noise.configs, noise.hosts, n_nights
        self.common = rng.normal(0.0, 1.0, t)
        self.host_effect = rng.normal(0.0, 1.0, (h, t))
        self.bad_host = np.where(
            rng.random((h, t)) < noise.bad_host_rate,
            np.abs(rng.normal(0.0, noise.outlier_sd, (h, t))),
            0.0,
        )
        self.host_of = rng.integers(0, h, (c, t))
        self.steps = np.zeros((c, t)) if steps is None else np.asarray(steps, dtype=np.float64)
        self._seed = int(rng.integers(2**62))
        self._rng = rng
        self._nights: dict[tuple[int, int], Night] = {}

    def _effect(self, rng: np.random.Generator, c: int, t: int, host: int) -> float:
        cfg, noise = self.configs[c], self.noise
        run_share = 1.0 - noise.common_share - noise.host_share
        effect = cfg.night_sd * (
            math.sqrt(noise.common_share) * self.common[t]
            + math.sqrt(noise.host_share) * self.host_effect[host, t]
            + math.sqrt(run_share) * rng.normal()
        )
        if rng.random() < noise.outlier_run_rate:
            effect += abs(rng.normal(0.0, noise.outlier_sd))
        return effect + self.bad_host[host, t] + self.steps[c, t]

    def _run(self, rng: np.random.Generator, c: int, t: int, host: int, extra: int = 1) -> Night:
        cfg, base = self.configs[c], self.noise.base
        n = cfg.n * extra
        ttft = np.exp(cfg.level + self._effect(rng, c, t, host) + rng.normal(0.0, cfg.sigma, n))
        stragglers = rng.random(n) < base.straggler_rate
        ttft[stragglers] *= rng.uniform(*base.straggler_factor, int(stragglers.sum()))
        throughput = n * TOKENS_PER_REQUEST / (ttft.sum() * E2E_OVER_TTFT / 1e3)
        p50, p99 = np.percentile(ttft, (50, 99))
        summary = {
            "ttft_p50_ms": float(p50),
            "ttft_p99_ms": float(p99),
            "output_tokens_per_s": float(throughput),
        }
        requests = {"ttft": ttft, "e2e": ttft * E2E_OVER_TTFT}
        return Night(summary=summary, requests=requests, label=f"config {c} night {t}")

    def night(self, c: int, t: int) -> Night:
        """The campaign's run of configuration ``c`` on night ``t``."""
        key = (c, t)
        if key not in self._nights:
            rng = np.random.default_rng([self._seed, c, t, 0])
            self._nights[key] = self._run(rng, c, t, int(self.host_of[c, t]))
        return self._nights[key]

    def confirm(self, c: int, t: int, extra: int = 1) -> tuple[Night, int]:
        """A same-night re-run of ``c`` (with ``extra`` times the requests) and its host,
        any host with equal chance, as a Celery queue hands it to any free worker."""
        rng = np.random.default_rng([self._seed, c, t, 1])
        host = int(rng.integers(0, self.noise.hosts))
        return self._run(rng, c, t, host, extra), host

    def host(self, c: int, t: int) -> str:
        return f"host{int(self.host_of[c, t])}"
