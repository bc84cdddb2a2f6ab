"""Timing modes (stream, events, dual): config rules, the events hook inside
HF's real generate() loop, and ``bench run`` in each mode on CPU.

Device events need a GPU or a Gaudi card; here the events path runs with a
host-clock stand-in for the event (it reads the clock when ``record()`` is
called), which checks what CPU can check: where the hook sits in the loop,
the resolution of event times onto the send-time clock, ids and EOS cuts.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from bench.backends.hf import HFBackend
from bench.core.config import RunConfig, default_timing
from bench.core.metrics import busy_seconds, dual_windows, request_result, summarize
from bench.core.prompts import load_prompt_set
from bench.core.records import RequestRecord
from bench.core.step_events import EventTimeline, StepEvents
from bench.errors import ConfigError
from bench.runner import Plan, prepare
from tests.core.delay_model import DelayModel, save_delay_model
from tests.core.test_cli_run import bench

ID = {"prompt_set_sha": "abc", "n_requests": 8}
PREFILL_MS, DECODE_MS, N_OUT = 30.0, 25.0, 8

# -- config ------------------------------------------------------------------------------


def test_default_is_dual_for_gaudi_generate_and_stream_elsewhere() -> None:
    assert default_timing("habana", "hpu") == "dual"
    assert default_timing("hf", "cuda") == default_timing("hf", "cpu") == "stream"
    assert default_timing("openai", "hpu") == "stream"  # the server streams; nothing else to time
    gaudi = RunConfig(model="m", backend="habana", device="hpu")
    assert gaudi.timing is None and gaudi.effective_timing == "dual"


def test_prepare_stores_the_mode_in_effect(tiny_model: Path) -> None:
    plan = prepare(RunConfig(model=str(tiny_model), device="cpu", precision="fp32"))
    assert plan.config.timing == "stream"
    assert prepare(plan.config.replace(timing="dual")).config.timing == "dual"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timing": "events"}, "timing events needs device timing events .*cpu has none"),
        ({"timing": "sync"}, "unknown timing 'sync'; choose one of: stream, events, dual"),
        (
            {"timing": "dual", "backend": "openai", "concurrency": 2,
             "options": {"base_url": "http://h:1/v1"}},
            "backend openai supports timing stream, not dual",
        ),
    ],
)  # fmt: skip
def test_impossible_modes_are_one_line_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(model="m", device="cpu", precision="fp32", **changes)
    assert "\n" not in str(info.value)


def test_events_on_auto_is_refused_once_auto_turns_out_to_be_cpu(tiny_model: Path) -> None:
    config = RunConfig(model=str(tiny_model), device="auto", precision="fp32", timing="events")
    with pytest.raises(ConfigError, match="cpu has none"):
        prepare(config)  # before any model loads


def test_stream_keeps_old_fingerprints_and_other_modes_start_their_own() -> None:
    base = RunConfig(model="m", device="cpu", precision="fp32")
    fp = base.fingerprint(**ID)
    assert base.replace(timing="stream").fingerprint(**ID) == fp
    assert "timing" not in base.identity(**ID)
    dual = base.replace(timing="dual")
    assert dual.fingerprint(**ID) != fp and dual.identity(**ID)["timing"] == "dual"
    cuda = base.replace(device="cuda")
    assert len({cuda.fingerprint(**ID), cuda.replace(timing="events").fingerprint(**ID)}) == 2
    gaudi = RunConfig(model="m", backend="habana", device="hpu")
    assert gaudi.fingerprint(**ID) == gaudi.replace(timing="dual").fingerprint(**ID)


# -- the events hook and its arithmetic ------------------------------------------------------


class ScriptedEvent:
    """A timing event on a scripted device clock (seconds)."""

    def __init__(self, device_clock: Any) -> None:
        self._clock = device_clock
        self.t: float | None = None
        self.synced = False

    def record(self) -> None:
        self.t = self._clock()

    def synchronize(self) -> None:
        self.synced = True

    def elapsed_time(self, end: ScriptedEvent) -> float:
        assert self.t is not None and end.t is not None
        return (end.t - self.t) * 1e3


def test_event_times_land_on_the_host_clock_of_the_send_time() -> None:
    # the device clock runs 1000 s away from the host's; only differences count
    device = iter([1000.0, 1000.040, 1000.048, 1000.057]).__next__
    made: list[ScriptedEvent] = []

    def new_event() -> ScriptedEvent:
        made.append(ScriptedEvent(device))
        return made[-1]

    flushes: list[int] = []
    timeline = EventTimeline(new_event, steps=3, flush=lambda: flushes.append(1))
    assert len(made) == 4  # anchor + one per step, all allocated before the send time
    t_send = timeline.start(lambda: 5.0)
    for _ in range(3):
        assert timeline.criterion(None, None) is False  # a Python bool: nothing to sync on
    assert timeline.token_times(t_send) == pytest.approx((5.040, 5.048, 5.057))
    assert made[-1].synced and not made[1].synced  # one wait, on the last event
    assert len(flushes) == 1 + 3 + 1  # after the anchor, before each step, before the wait


def test_the_criterion_grows_past_its_preallocated_events() -> None:
    clock = itertools.count().__next__
    criterion = StepEvents(lambda: ScriptedEvent(clock), steps=1, flush=None)
    for _ in range(3):
        criterion(None, None)
    assert criterion.steps == 3 and [e.t for e in criterion.recorded] == [0, 1, 2]
    assert not hasattr(criterion, "eos_token_id")  # optimum-habana: "an EOS criterion"


class HostEvent:
    """Stands in for a device event on CPU: it reads the host clock when recorded."""

    def record(self) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: HostEvent) -> float:
        return (end.t - self.t) * 1e3


class HostEventsBackend(HFBackend):
    def _event_factory(self) -> Any:
        return HostEvent


def _measure(
    model_dir: Path, timing: str, *, batch_size: int = 2, stop_at_eos: bool = False
) -> tuple[list[RequestRecord], list[float]]:
    config = RunConfig(
        model=str(model_dir), precision="fp32", device="cpu", batch_size=batch_size,
        max_new_tokens=N_OUT, limit=batch_size * 2, warmup=0, ignore_eos=not stop_at_eos,
    )  # fmt: skip
    if timing != "events":  # events is refused on cpu: only the stand-in backend runs it
        config = config.replace(timing=timing)
    backend = HostEventsBackend(config)
    if timing == "events":
        object.__setattr__(backend.config, "timing", "events")
    plan = Plan(config, load_prompt_set("default"))
    backend.load()
    backend.check(plan.measured)
    model: DelayModel = backend.model
    backend.execute(plan.measured[:batch_size], lambda n: None)  # warm the code paths
    model.forward_ends.clear()
    return backend.execute(plan.measured, lambda n: None), model.forward_ends


@pytest.fixture(scope="module")
def delay_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_delay_model(
        tmp_path_factory.mktemp("delay") / "m",
        tiny_model,
        prefill_ms=PREFILL_MS,
        decode_ms=DECODE_MS,
        eos_at=[3, None],
    )


@pytest.mark.slow
def test_events_hook_fires_when_each_token_exists_in_hfs_loop(delay_dir: Path) -> None:
    records, forward_ends = _measure(delay_dir, "events")
    assert len(forward_ends) == 2 * N_OUT
    for batch in range(2):
        truth = forward_ends[batch * N_OUT : (batch + 1) * N_OUT]
        for record in records[batch * 2 : (batch + 1) * 2]:
            assert len(record.token_times) == record.output_tokens == N_OUT
            # after the step's forward produced the token, before the next one began
            nexts = [t - DECODE_MS / 1e3 for t in truth[1:]] + [float("inf")]
            for got, done, next_start in zip(record.token_times, truth, nexts, strict=True):
                assert done <= got <= next_start


@pytest.mark.slow
def test_every_mode_keeps_the_same_generated_ids_and_eos_cuts(delay_dir: Path) -> None:
    runs = {t: _measure(delay_dir, t, stop_at_eos=True)[0] for t in ("stream", "events", "dual")}
    ids = {t: [r.output_token_ids for r in records] for t, records in runs.items()}
    assert ids["stream"] == ids["events"] == ids["dual"]
    first = runs["stream"][0].output_token_ids
    assert first is not None and len(first) == 4  # EOS at step 3 ends sequence 0, EOS counted
    assert [r.output_tokens for r in runs["events"][:2]] == [4, N_OUT]
    assert len(runs["events"][0].token_times) == 4
    dual = runs["dual"]
    assert all(r.bare_t_send is not None and r.bare_t_done is not None for r in dual)
    assert all((r.bare_t_done or 0) < r.t_send for r in dual)  # bare pass first, then streamed
    assert all(r.bare_t_send is None for r in runs["stream"] + runs["events"])


# -- dual's arithmetic --------------------------------------------------------------------------


def test_busy_seconds_is_the_union_of_intervals() -> None:
    assert busy_seconds([]) == 0.0
    assert busy_seconds([(0, 1), (0, 1), (2, 3)]) == 2.0  # a batch's requests share one
    assert busy_seconds([(0, 2), (1, 3), (2.5, 2.7), (5, 6)]) == 4.0


def _dual_record(i: int, t_send: float, bare: tuple[float, float]) -> RequestRecord:
    times = (t_send + 0.1, t_send + 0.2, t_send + 0.35)
    return RequestRecord(i, "p", 5, 3, t_send, times, bare_t_send=bare[0], bare_t_done=bare[1])


def test_dual_takes_e2e_and_throughput_from_the_bare_pass() -> None:
    # two batches of two: bare 0.3 s then streamed 0.35 s, each
    records = [
        _dual_record(0, 0.5, (0.0, 0.3)),
        _dual_record(1, 0.5, (0.0, 0.3)),
        _dual_record(2, 1.5, (1.0, 1.3)),
        _dual_record(3, 1.5, (1.0, 1.3)),
    ]
    r = request_result(records[0])
    assert r.e2e_ms == pytest.approx(300.0) and r.ttft_ms == pytest.approx(100.0)
    assert r.ttft_ms + sum(r.itl_ms) == pytest.approx(350.0)  # the streamed pass's latency
    windows = dual_windows(records)
    assert windows == pytest.approx((0.6, 0.7))
    bare_s, streamed_s = windows  # type: ignore[misc]
    m = summarize(
        [request_result(x) for x in records],
        duration_s=bare_s,
        energy_j=24.0,
        passes=2,
        streamed_vs_bare_ratio=streamed_s / bare_s,
    )
    assert m.output_tokens_per_s == pytest.approx(12 / 0.6)
    assert m.streamed_vs_bare_ratio == pytest.approx(0.7 / 0.6)
    assert m.energy_j_per_token == pytest.approx(24.0 / 24)  # both passes' 24 tokens
    assert dual_windows([RequestRecord(0, "p", 5, 3, 0.0, (0.1,))]) is None


# -- bench run, as a user runs it ------------------------------------------------------------


def _bench_run(model_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    proc = bench(
        "run", "--model", str(model_dir), "--trust-remote-code", "--device", "cpu",
        "--precision", "fp32", "--batch-size", "2", "--max-new-tokens", str(N_OUT),
        "--limit", "6", "--warmup", "1", "--no-db", "--output", str(out), "-q", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {"requests": rows[:-1], "summary": rows[-1], "stdout": proc.stdout}


@pytest.mark.slow
def test_dual_and_stream_agree_on_cpu_through_bench_run(tiny_model: Path, tmp_path: Path) -> None:
    """On CPU streaming is free (HF syncs every step anyway), so dual's bare
    pass must match the streamed one: the same metrics within noise. Sleeps
    of 30/25 ms dominate each step, so a busy machine moves little."""
    model = save_delay_model(
        tmp_path / "delay", tiny_model, remote_code=True, prefill_ms=PREFILL_MS,
        decode_ms=DECODE_MS,
    )  # fmt: skip
    stream = _bench_run(model, tmp_path / "stream.jsonl", "--timing", "stream")
    dual = _bench_run(model, tmp_path / "dual.jsonl", "--timing", "dual")
    s, d = stream["summary"], dual["summary"]
    assert s["config"]["timing"] == "stream" and d["config"]["timing"] == "dual"
    assert s["fingerprint"] != d["fingerprint"]
    assert "timing=dual" in dual["stdout"] and "streamed/bare wall time" in dual["stdout"]
    sm, dm = s["metrics"], d["metrics"]
    assert sm.keys() == dm.keys()  # one vocabulary
    assert sm["streamed_vs_bare_ratio"] is None
    assert 0.85 < dm["streamed_vs_bare_ratio"] < 1.2  # two passes side by side in one process
    for name in ("ttft_p50_ms", "tpot_p50_ms", "itl_p50_ms", "e2e_p50_ms", "output_tokens_per_s"):
        assert dm[name] == pytest.approx(sm[name], rel=0.25), name
    nominal_e2e = PREFILL_MS + (N_OUT - 1) * DECODE_MS
    for row in dual["requests"]:
        assert row["e2e_ms"] >= nominal_e2e  # the bare pass's latency
        assert row["ttft_ms"] + sum(row["itl_ms"]) >= nominal_e2e  # the streamed pass's
        assert row["tpot_ms"] >= DECODE_MS
    assert statistics.median(r["e2e_ms"] for r in dual["requests"]) == pytest.approx(
        dm["e2e_p50_ms"]
    )


@pytest.mark.slow
def test_events_on_cpu_through_bench_run_is_one_line_and_writes_nothing(
    tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    proc = bench(
        "run", "--model", str(tiny_model), "--device", "cpu", "--timing", "events",
        "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: error: timing events needs device timing events (cuda/hpu); "
        "cpu has none: use timing stream or dual"
    ]
    assert not out.exists() and not (tmp_path / "bench_home").exists()


def test_campaign_field_sets_every_config_and_is_checked_when_parsed() -> None:
    from bench.campaign import parse_campaign
    from bench.errors import CampaignError

    base = {"device": "cpu", "precisions": ["fp32"], "models": ["m"]}
    assert {c.timing for c in parse_campaign("c", base).configs()} == {None}  # device default
    dual = parse_campaign("c", {**base, "timing": "dual"})
    assert {c.timing for c in dual.configs()} == {"dual"}
    assert dual.with_overrides({"limit": 4}).timing == "dual"  # survives trigger overrides
    with pytest.raises(CampaignError, match=r"c\.yaml: timing: unknown value 'bare'"):
        parse_campaign("c", {**base, "timing": "bare"}, source="c.yaml")
    with pytest.raises(CampaignError, match="timing events needs device timing events"):
        parse_campaign("c", {**base, "timing": "events"}, source="c.yaml")
