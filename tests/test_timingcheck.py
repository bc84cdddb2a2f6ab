"""The timing-mode comparison engine of cuda_check.py and hpu_check.py: its
arithmetic on known samples, and a real run on the tiny model on CPU."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.timingcheck import (
    CheckReport,
    Device,
    Progress,
    Sample,
    VariantStats,
    bench_run_modes,
    compare_batch,
    format_row,
    paired_ratio,
    plan_rounds,
    summarize_batch,
    token_stats,
    write_report,
)
from tests.conftest import REPO


def test_rounds_fit_the_budget_within_bounds() -> None:
    assert plan_rounds(10.0, 100.0, max_rounds=3) == 3
    assert plan_rounds(40.0, 100.0, max_rounds=3) == 2
    assert plan_rounds(400.0, 100.0, max_rounds=3) == 1  # always at least one
    assert plan_rounds(0.0, 100.0, max_rounds=5) == 5


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    # round 2 was slow for everyone: pairing removes it, a ratio of medians would not
    assert paired_ratio([1.1, 2.2, 1.21], [1.0, 2.0, 1.1]) == pytest.approx(1.1)
    assert paired_ratio([1.0], []) is None


def test_token_stats_from_times_relative_to_the_send() -> None:
    samples = [Sample(0.5, (0.1, 0.2, 0.3)), Sample(0.5, (0.2, 0.25, 0.3))]
    stats = token_stats(samples)
    assert stats["ttft_p50_ms"] == pytest.approx(150.0)
    assert stats["tpot_p50_ms"] == pytest.approx(75.0)  # 100 and 50 ms
    assert stats["itl_p50_ms"] == pytest.approx(75.0)  # gaps 100, 100, 50, 50


def test_a_batch_row_compares_every_variant_with_bare() -> None:
    stats = {
        "bare": VariantStats([Sample(1.0), Sample(2.0)]),
        "stream": VariantStats([Sample(1.2, (0.1, 0.3)), Sample(2.4, (0.1, 0.3))]),
        "events": VariantStats([Sample(1.0, (0.09, 0.28))]),
        "dual": VariantStats([Sample(1.0, (0.1, 0.3), total_s=2.2)]),
    }
    stats["events"].error = "RuntimeError: boom"  # failed after one round
    row = summarize_batch(4, 10, stats)
    v = row["variants"]
    assert v["bare"]["vs_bare"] == 1.0 and v["bare"]["output_tokens_per_s"] == pytest.approx(
        40 / 1.5
    )
    assert v["stream"]["vs_bare"] == pytest.approx(1.2) and v["stream"]["rounds"] == 2
    assert v["dual"]["streamed_vs_bare"] == pytest.approx(1.2) and v["dual"]["vs_bare"] == 1.0
    assert v["events"]["error"] == "RuntimeError: boom"
    assert row["events_minus_stream_ms"]["ttft_p50_ms"] == pytest.approx(-10.0)
    lines = format_row(row)
    assert "error: RuntimeError: boom" in lines[3] and "1.200x its bare pass" in lines[4]


def test_the_report_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_report({"rows": [1]}, path)
    write_report({"rows": [1, 2]}, path)
    assert json.loads(path.read_text()) == {"rows": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_sweep_shares_the_budget_and_a_failing_batch_costs_only_itself(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    check = CheckReport({"device": "x"}, tmp_path / "r.json", Progress(lines.append))
    cleaned: list[int] = []
    shares: dict[int, float] = {}

    seen: list[list[int]] = []  # the saved rows when each batch starts

    def measure(batch: int, share: float) -> dict[str, Any]:
        shares[batch] = share
        report = tmp_path / "r.json"
        seen.append([r["batch"] for r in json.loads(report.read_text())["rows"]] if report.exists() else [])  # fmt: skip
        if batch == 8:
            raise RuntimeError("out of memory")
        return {"batch": batch, "variants": {}}

    check.sweep([1, 8, 64], measure, budget_s=300, reserve_s=60, after_failure=lambda: cleaned.append(1))  # fmt: skip
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["batch"] for r in saved["rows"]] == [1, 64]
    assert saved["errors"] == ["batch 8: RuntimeError: out of memory"] and cleaned == [1]
    assert 79 < shares[1] <= 80 and shares[8] > shares[1]  # 240 s over 3, then the rest over 2
    assert seen == [[], [1], [1]]  # written after every batch, the failed one included
    assert any("batch 8 FAILED: out of memory" in line for line in lines)
    # a step's failure is recorded, not raised; a step that works is timed
    assert check.step("cli", lambda: 1 // 0) is None and check.step("build", lambda: 7) == 7
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["errors"][-1] == "cli: ZeroDivisionError: integer division or modulo by zero"
    assert saved["build_s"] >= 0 and "cli_s" not in saved
    assert check.done() == 0 and lines[-1].endswith(f"; JSON in {tmp_path / 'r.json'}")


@pytest.mark.slow
def test_bench_run_modes_runs_each_mode_and_a_failing_one_stays_alone(
    tiny_model: Path, tmp_path: Path
) -> None:
    def argv(timing: str, out: Path) -> list[str]:
        model = tiny_model if timing == "stream" else tmp_path / "no-such-model"
        return ["--model", str(model), "--timing", timing, "--max-new-tokens", "4",
                "--limit", "2", "--no-db", "--output", str(out), "-q"]  # fmt: skip

    lines: list[str] = []
    result = bench_run_modes(
        argv, ("dual", "stream"), lines.append, cwd=REPO, env=os.environ, timeout_s=300
    )
    assert not result["dual"]["ok"] and "no-such-model" in result["dual"]["error"]
    stream = result["stream"]
    assert stream["ok"] and stream["config"]["timing"] == "stream"
    assert stream["metrics"]["ttft_p50_ms"] > 0 and stream["environment"]
    assert lines[0].startswith("bench run --timing dual: FAILED")
    assert lines[1].startswith("bench run --timing stream: ok, ttft p50")


class HostEvent:
    """Stands in for a device event on CPU: reads the host clock when recorded."""

    def record(self) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: HostEvent) -> float:
        return (end.t - self.t) * 1e3


@pytest.mark.slow
def test_every_variant_runs_on_the_tiny_model_and_a_broken_one_stays_alone(
    tiny_model: Path,
) -> None:
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    gen = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
    ids = torch.randint(10, 100, (2, 8))

    def generate(**kwargs: Any) -> Any:
        with torch.inference_mode():
            return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  generation_config=gen, **kwargs)  # fmt: skip

    lines: list[str] = []
    row = compare_batch(
        generate, Device("cpu", lambda: None, HostEvent), batch=2, new_tokens=6,
        variants=["bare", "stream", "events", "dual"], budget_s=60, max_rounds=2,
        log=Progress(lines.append),
    )  # fmt: skip
    v = row["variants"]
    assert all(v[name]["rounds"] == 2 and v[name]["error"] is None for name in v)
    for name in ("stream", "events"):  # the first token comes within its round's wall time
        slower_round_s = 2 * v[name]["median_s"] - v[name]["min_s"]  # two rounds
        assert 0 < v[name]["ttft_p50_ms"] <= slower_round_s * 1e3
    # dual: its walls are the bare passes; the tokens are the streamed pass's
    assert v["dual"]["ttft_p50_ms"] > 0 and v["dual"]["streamed_vs_bare"] > 0
    assert "events_minus_stream_ms" in row
    assert any("round 2/2 done" in line for line in lines)

    def broken() -> Any:
        raise RuntimeError("no events here")

    row = compare_batch(
        generate, Device("cpu", lambda: None, broken), batch=2, new_tokens=6,
        variants=["bare", "events", "stream"], budget_s=60, max_rounds=1, log=lambda _: None,
    )  # fmt: skip
    assert row["variants"]["events"]["error"] == "RuntimeError: no events here"
    assert row["variants"]["stream"]["rounds"] == row["variants"]["bare"]["rounds"] == 1
