"""Outputs end to end through ``bench run`` on the tiny model and a real Postgres:
the weights change between two runs and ``bench regressions --detect`` says
which requests generated other tokens and where; ``--no-outputs`` keeps no
ids; ``bench run`` prints the agreement with a more precise stored run; a
model whose outputs vary run to run is marked nondeterministic, not alarmed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.core.records import unpack_token_ids
from bench.stats.outputs import first_divergence
from tests.conftest import REPO
from tests.core.delay_model import save_delay_model

pytestmark = pytest.mark.slow

RUN = ["--device", "cpu", "--batch-size", "2", "--limit", "4", "--max-new-tokens", "12",
       "--warmup", "0", "-q"]  # fmt: skip


def bench(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "BENCH_DB_URL": db_url},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def night(db_url: str, model: Path, n: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return bench(db_url, "run", "--model", str(model), *RUN, "--campaign-run-id", f"night{n}",
                 "--trigger", "scheduled", *extra)  # fmt: skip


def detect(db_url: str, n: int) -> list[dict[str, Any]]:
    out = bench(db_url, "regressions", "--detect", "--campaign", f"night{n}", "--format", "json")
    return [r for r in json.loads(out.stdout or "[]") if r["verdict"] == "output_changed"]


def stored_ids(db_url: str, campaign: str) -> list[tuple[int, ...] | None]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT q.output_ids FROM request_result q JOIN run r ON r.id = q.run_id"
                    " JOIN campaign c ON c.id = r.campaign_id WHERE c.dag_run_id = :c"
                    " ORDER BY q.request_index"
                ),
                {"c": campaign},
            ).scalars()
            return [None if b is None else unpack_token_ids(b) for b in rows]
    finally:
        engine.dispose()


def perturb_one_tensor(model_dir: Path) -> str:
    """Noise on one weight tensor of the model directory (what a re-quantized
    or re-uploaded checkpoint looks like to the gate); its name."""
    import torch
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = load_file(path)
    name = next(k for k in sorted(tensors) if k == "model.layers.0.self_attn.v_proj.weight")
    weight = tensors[name]
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    tensors[name] = weight + noise.to(weight.dtype) * 3 * weight.float().std().to(weight.dtype)
    save_file(tensors, path, metadata={"format": "pt"})
    return name


def test_changed_weights_are_listed_as_output_changed(
    tiny_model: Path, tmp_path: Path, db_url: str
) -> None:
    model = tmp_path / "tiny-copy"
    shutil.copytree(tiny_model, model)
    first = night(db_url, model, 1)
    assert "outputs: 4 kept, digest" in first.stdout
    night(db_url, model, 2)
    assert detect(db_url, 2) == []  # same weights, greedy: the same tokens
    perturb_one_tensor(model)
    night(db_url, model, 3)
    before, after = stored_ids(db_url, "night2"), stored_ids(db_url, "night3")
    assert all(ids is not None and len(ids) == 12 for ids in (*before, *after))
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed, "the perturbed tensor changed no output: perturb harder"
    (row,) = detect(db_url, 3)
    detail = row["detail"]
    assert (detail["requests_changed"], detail["requests_compared"]) == (len(changed), 4)
    assert detail["first_request"] == changed[0]
    first_before, first_after = before[changed[0]], after[changed[0]]
    assert first_before is not None and first_after is not None
    assert detail["first_position"] == first_divergence(first_before, first_after)
    assert row["label"] == "tiny-copy/bf16/bs2" and row["metric"] == "output"


def test_no_outputs_keeps_no_ids_and_bench_run_prints_the_agreement(
    tiny_model: Path, tmp_path: Path, db_url: str
) -> None:
    jsonl = tmp_path / "bare.jsonl"
    fp32 = ("--precision", "fp32")
    bare = night(db_url, tiny_model, 1, *fp32, "--no-outputs", "--output", str(jsonl))
    assert "digests only (--no-outputs)" in bare.stdout
    assert stored_ids(db_url, "night1") == [None] * 4
    requests = [
        r for r in map(json.loads, jsonl.read_text().splitlines()) if r["kind"] == "request"
    ]
    assert len(requests) == 4
    assert all(r["output_token_ids"] is None and len(r["output_sha"]) == 64 for r in requests)
    kept = night(db_url, tiny_model, 2, *fp32)  # same fingerprint, same tokens: digests agree
    assert bare.stdout.split("digest ")[1][:12] == kept.stdout.split("digest ")[1][:12]
    bf16 = night(db_url, tiny_model, 3, "--precision", "bf16")
    line = next(x for x in bf16.stdout.splitlines() if x.startswith("agreement with fp32"))
    assert "output_exact_match" in line and "output_prefix_match" in line


def test_outputs_that_vary_run_to_run_are_nondeterministic_not_alarmed(
    tiny_model: Path, tmp_path: Path, db_url: str
) -> None:
    """A model whose fourth token differs each run (a flaky accelerator,
    with nothing else changing): the first change is alarmed, the second marks
    the configuration nondeterministic, which is shown and not alarmed."""
    model = save_delay_model(
        tmp_path / "flaky", tiny_model, remote_code=True, prefill_ms=0.0, decode_ms=0.0,
        varying_at_step=3, counter_file=str(tmp_path / "builds"),
    )  # fmt: skip
    flaky = ("--trust-remote-code",)
    for n in (1, 2, 3):
        night(db_url, model, n, *flaky)
    (second,) = detect(db_url, 2)
    assert second["detail"]["nondeterministic"] is False
    assert second["detail"]["first_position"] == 3
    (third,) = detect(db_url, 3)
    assert third["detail"]["nondeterministic"] is True
    assert "output-nondeterministic" in third["reason"]
    from bench.notify import format_message

    flagged = {**third, **third["detail"]}
    assert format_message([flagged], dag_id="d", run_id="night3") is None  # not alarmed
