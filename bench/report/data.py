"""What a report shows, as plain frozen data: the caller fills it, the renderer draws it.

Nothing here knows about the database; the store (or a test) builds a
:class:`ReportData` from query results, :func:`bench.report.render_report`
turns it into one HTML file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bench.report.changes import VerdictNote
    from bench.report.outputs import OutputsData
    from bench.report.targets import TargetRow

from bench.stats.types import Verdict

#: A detector verdict (bench.stats.types.VERDICTS) or a change point of the series.
MarkerKind = Verdict | Literal["changepoint"]


@dataclass(frozen=True)
class Marker:
    """A verdict or a change point on one night of one metric's trend; a
    verdict carries its evidence (baseline and current value, p-value)."""

    night: datetime
    metric: str
    kind: MarkerKind
    change_pct: float | None = None
    p_value: float | None = None
    baseline: float | None = None
    current: float | None = None


@dataclass(frozen=True)
class ConfigSeries:
    """One configuration's history: a value per night for each metric (None = missing).

    ``runs`` names each night's run (its DAG run id) and ``run_ids`` its row id
    when the series came from the results DB; ``slos`` holds the TTFT/TPOT
    service-level objectives (ms) its newest run was measured against, keyed
    as in :data:`bench.report.style.SLO_FIELDS`.
    """

    config: str
    nights: Sequence[datetime]
    values: Mapping[str, Sequence[float | None]]
    markers: Sequence[Marker] = ()
    fingerprint: str = ""
    runs: Sequence[str] = ()
    run_ids: Sequence[int] = ()
    slos: Mapping[str, float] = field(default_factory=dict)
    #: the device model and card count of this history (README "What makes two
    #: runs comparable"): one configuration on two device models is two series
    device_model: str = ""
    cards: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "nights", tuple(self.nights))
        object.__setattr__(
            self, "values", MappingProxyType({k: tuple(v) for k, v in self.values.items()})
        )
        object.__setattr__(self, "markers", tuple(self.markers))
        object.__setattr__(self, "runs", tuple(self.runs))
        object.__setattr__(self, "run_ids", tuple(self.run_ids))
        object.__setattr__(self, "slos", MappingProxyType(dict(self.slos)))
        for metric, values in self.values.items():
            if len(values) != len(self.nights):
                raise ValueError(
                    f"{self.config}: {metric} has {len(values)} values for {len(self.nights)} nights"
                )
        for name in ("runs", "run_ids"):
            if getattr(self, name) and len(getattr(self, name)) != len(self.nights):
                raise ValueError(f"{self.config}: {name} must name every night or none")


@dataclass(frozen=True)
class TableRow:
    """One metric of one configuration in the latest campaign, against its baseline."""

    config: str
    metric: str
    current: float | None
    baseline: float | None = None
    change_pct: float | None = None
    verdict: Literal["regression", "suspicious", "improvement"] | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class Samples:
    """Per-request values of one distribution (``ttft``, ``itl``...) tonight and in the baseline."""

    config: str
    distribution: str
    tonight: Sequence[float]
    baseline: Sequence[float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tonight", tuple(float(v) for v in self.tonight))
        object.__setattr__(self, "baseline", tuple(float(v) for v in self.baseline))


@dataclass(frozen=True)
class ParetoPoint:
    """One configuration's latest throughput and TTFT p99: a point of the tuning view."""

    model: str
    precision: str
    batch_size: int
    output_tokens_per_s: float
    ttft_p99_ms: float


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows."""

    title: str
    generated_at: datetime
    campaign: str | None = None
    series: Sequence[ConfigSeries] = ()
    table: Sequence[TableRow] = ()
    samples: Sequence[Samples] = ()
    pareto: Sequence[ParetoPoint] = ()
    notes: Sequence[str] = field(default=())
    #: The campaign's verdicts with what changed (bench.report.changes).
    verdicts: Sequence[VerdictNote] = ()
    #: What the runs generated (bench.report.outputs); None: no section.
    outputs: OutputsData | None = None
    #: Its configurations on each of its targets (bench.report.targets); empty
    #: for a campaign with fewer than two targets.
    targets: Sequence[TargetRow] = ()
    #: Configuration label -> the try of its task that stored its run, for
    #: the runs an Airflow retry stored (a "tries" column when any).
    tries: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("series", "table", "samples", "pareto", "notes", "verdicts", "targets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "tries", MappingProxyType(dict(self.tries)))
