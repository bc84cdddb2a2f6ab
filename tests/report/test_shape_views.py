"""Results grouped and filtered by workload shape: the Benchmarks page's
shape filter, its series API, and the campaign table's shape column."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bench.errors import ConfigError
from bench.report import browse
from bench.store import writer
from bench.store.db import get_engine
from bench.store.migrate import upgrade
from bench.store.queries import run_query
from tests.store import store_factory as f

SHAPES = ((128, 128), (2048, 128))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = get_engine(db_url)
    upgrade(engine)
    for n_in, n_out in SHAPES:
        for bs in (1, 4):
            cfg = f.config(model="m", batch_size=bs, input_tokens=n_in, max_new_tokens=n_out)
            writer.load_result(engine, f.result(cfg, campaign=f.nightly(0)))
    writer.load_result(engine, f.result(f.config(model="m"), campaign=f.nightly(0)))
    yield engine
    engine.dispose()


def test_the_page_filters_series_by_shape(engine: sa.Engine) -> None:
    models = browse.list_models(engine)
    assert browse.list_shapes(engine, "m") == ["in128-out128", "in2048-out128"]
    every = browse.trend(engine, browse.parse_view(models, "m", None, None))
    assert len(every) == 5
    view = browse.parse_view(models, "m", None, None, "in2048-out128")
    assert [s.config for s in browse.trend(engine, view)] == [
        "m/fp32/bs1/in2048-out128",
        "m/fp32/bs4/in2048-out128",
    ]
    with pytest.raises(ConfigError, match="expected inN-outM"):
        browse.parse_view(models, "m", None, None, "2048/128")


def test_shape_of_a_label() -> None:
    assert browse.shape_of("llama/bf16/bs8/in128-out2048") == "in128-out2048"
    assert browse.shape_of("llama/bf16/bs8/in128-out2048@gaudi3") == "in128-out2048"
    assert browse.shape_of("llama/bf16/bs8") is None


def test_the_campaign_table_names_each_shape(engine: sa.Engine) -> None:
    rows = run_query(engine, "campaign_runs", campaign=f.nightly(0).dag_run_id)
    assert [(r["label"], r["shape"]) for r in rows] == [
        ("m/fp32/bs1", "out4"),
        ("m/fp32/bs1/in128-out128", "in128-out128"),
        ("m/fp32/bs4/in128-out128", "in128-out128"),
        ("m/fp32/bs1/in2048-out128", "in2048-out128"),
        ("m/fp32/bs4/in2048-out128", "in2048-out128"),
    ]


def test_dataset_output_lengths_are_a_shape_of_their_own(engine: sa.Engine) -> None:
    """``output_lengths: dataset`` (a fingerprint of its own) reads ``outds<cap>``
    in labels, the campaign table, the page's filter and ``best_batch_size``."""
    cfg = f.config(model="m", batch_size=2, output_lengths="dataset", max_new_tokens=256)
    writer.load_result(engine, f.result(cfg, campaign=f.nightly(0)))
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT label, output_lengths FROM benchmark_config WHERE output_lengths <> 'fixed'"
            )
        ).all()
    assert [tuple(r) for r in stored] == [("m/fp32/bs2/outds256", "dataset")]
    rows = run_query(engine, "campaign_runs", campaign=f.nightly(0).dag_run_id)
    assert ("m/fp32/bs2/outds256", "outds256") in [(r["label"], r["shape"]) for r in rows]
    assert browse.list_shapes(engine, "m") == ["in128-out128", "in2048-out128", "outds256"]
    assert browse.shape_of("m/fp32/bs2/outds256@gaudi3") == "outds256"
    best = run_query(engine, "best_batch_size", shape="outds256", slo_ttft_p99_ms=1e9)
    assert [(r["model"], r["shape"], r["best_batch_size"]) for r in best] == [("m", "outds256", 2)]
