"""`bench compare` on a real database: two campaigns, and two environment selections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench.store.db import get_engine
from bench.store.migrate import upgrade
from tests.regressions.test_attribution_db import bench, env, load_night, nightly
from tests.store.store_factory import config

pytestmark = pytest.mark.slow


@pytest.fixture
def two_campaigns(db_url: str) -> list[str]:
    """Three configurations on two nights; on night 1 bs2 is 10% slower and the image is new."""
    engine = get_engine(db_url)
    upgrade(engine)
    rng = np.random.default_rng(11)
    configs = [config(batch_size=b) for b in (1, 2, 4)]
    load_night(engine, 0, [(c, 40.0 * (i + 1), env()) for i, c in enumerate(configs)], rng)
    new = env(image="llm-bench-hpu:stack-1.22")
    load_night(
        engine, 1, [(c, 40.0 * (i + 1) * (1.10 if i == 1 else 1.0), new) for i, c in enumerate(configs)], rng
    )  # fmt: skip
    return [nightly(0).dag_run_id, nightly(1).dag_run_id]


def test_compare_two_campaigns_finds_the_one_shifted_configuration(
    two_campaigns: list[str], tmp_path: Path
) -> None:
    a, b = two_campaigns
    proc = bench("compare", a, b, "--metric", "ttft_p50_ms", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["label"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"tiny/fp32/bs1", "tiny/fp32/bs2", "tiny/fp32/bs4"}
    slow = rows["tiny/fp32/bs2"]
    assert slow["verdict"] == "slower" and slow["ci_low_pct"] > 0 and 5 < slow["change_pct"] < 15
    assert slow["p_value"] < 1e-3
    for label in ("tiny/fp32/bs1", "tiny/fp32/bs4"):
        assert rows[label]["ci_low_pct"] < 0 < rows[label]["ci_high_pct"], rows[label]
        assert rows[label]["verdict"] == "no change"
    assert slow["changed"] == "image llm-bench-hpu:stack-1.21->llm-bench-hpu:stack-1.22"
    assert slow["changed_detail"]["image"]["current"] == "llm-bench-hpu:stack-1.22"

    table = bench("compare", a, b, "--out", str(tmp_path / "cmp.html"))
    assert table.returncode == 0, table.stderr
    assert re.search(r"tiny/fp32/bs2\s+.*slower", table.stdout)
    page = (tmp_path / "cmp.html").read_text()
    assert 'data-config="tiny/fp32/bs2" data-verdict="slower"' in page
    assert "<script" not in page  # self-contained, nothing to load


def test_compare_two_environment_selections(two_campaigns: list[str]) -> None:
    proc = bench(
        "compare", "--a", "image=llm-bench-hpu:stack-1.21", "--b", "image=llm-bench-hpu:stack-1.22",
        "--since", "2020-01-01", "--format", "csv",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("label,metric,a,b,change_pct,ci_low_pct,ci_high_pct,p_value,verdict")
    verdicts = {line.split(",")[0]: line.split(",")[8] for line in lines[1:]}
    assert verdicts == {"tiny/fp32/bs1": "no change", "tiny/fp32/bs2": "slower",
                        "tiny/fp32/bs4": "no change"}  # fmt: skip


def test_compare_rejects_bad_sides_in_one_line(two_campaigns: list[str]) -> None:
    for args in (
        ("compare", two_campaigns[0]),  # no side B
        ("compare", two_campaigns[0], "--a", "image=x"),  # no side B (A: a campaign, narrowed)
        ("compare", "--a", "image", "--b", "image=y"),  # not KEY=VALUE
        ("compare", *two_campaigns, "--metric", "ttft_p5_ms"),
        ("compare", "--a", "image=x", "--b", "image=y", "--since", "yesterday"),
    ):
        proc = bench(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (
            args,
            proc.stderr,
        )
