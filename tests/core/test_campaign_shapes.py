"""The ``shapes`` matrix axis: parsing, per-model lists, exclusions by
``input``/``output``, trigger-time selection, and the shipped nightly campaign."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from bench.campaign import load_campaign, parse_campaign
from bench.errors import CampaignError
from tests.conftest import REPO

BASE: dict[str, Any] = {
    "device": "cpu",
    "precisions": ["fp32"],
    "batch_sizes": [1, 4],
    "max_new_tokens": 16,
    "shapes": [{"input": 32, "output": 8}, {"input": 64, "output": 4}],
    "models": ["tiny"],
}


def labels(data: dict[str, Any]) -> list[str]:
    return [c.label for c in parse_campaign("t", data).configs()]


def test_each_shape_multiplies_the_matrix_and_ends_the_label() -> None:
    assert labels(BASE) == [
        "tiny/fp32/bs1/in32-out8",
        "tiny/fp32/bs4/in32-out8",
        "tiny/fp32/bs1/in64-out4",
        "tiny/fp32/bs4/in64-out4",
    ]
    configs = parse_campaign("t", BASE).configs()
    assert {(c.input_tokens, c.max_new_tokens) for c in configs} == {(32, 8), (64, 4)}
    # without shapes: the prompt set as is and max_new_tokens, labels as before
    plain = parse_campaign("t", {k: v for k, v in BASE.items() if k != "shapes"}).configs()
    assert [(c.label, c.input_tokens, c.max_new_tokens) for c in plain] == [
        ("tiny/fp32/bs1", None, 16),
        ("tiny/fp32/bs4", None, 16),
    ]


def test_exclude_rules_and_models_name_shapes() -> None:
    data = {
        **BASE,
        "models": ["tiny", {"name": "other", "shapes": [{"input": 128, "output": 2}]}],
        "exclude": [{"model": "tiny", "input": 64, "output": 4, "batch_size": 4}],
    }
    assert labels(data) == [
        "tiny/fp32/bs1/in32-out8",
        "tiny/fp32/bs4/in32-out8",
        "tiny/fp32/bs1/in64-out4",
        "other/fp32/bs1/in128-out2",
        "other/fp32/bs4/in128-out2",
    ]
    only = parse_campaign("t", BASE).with_overrides({"shapes": [{"input": 64, "output": 4}]})
    assert [c.label for c in only.configs()] == [
        "tiny/fp32/bs1/in64-out4",
        "tiny/fp32/bs4/in64-out4",
    ]


@pytest.mark.parametrize(
    "shapes,message",
    [
        ([{"input": 32}], r"shapes\[0\]: output"),
        ([{"input": 0, "output": 8}], r"shapes\[0\]: input: must be >= 1, got 0"),
        ([{"input": 32, "output": 8, "batch": 2}], r"shapes\[0\]"),
        ([{"input": "long", "output": 8}], r"shapes\[0\]: input: expected int"),
        ("128/128", r"shapes"),
    ],
)
def test_a_malformed_shape_is_one_located_error(shapes: Any, message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        parse_campaign("t", {**BASE, "shapes": shapes})
    with pytest.raises(CampaignError, match="exclude"):
        parse_campaign("t", {**BASE, "exclude": [{"inputs": 32}]})


def test_nightly_runs_the_four_published_shapes_within_memory() -> None:
    nightly = load_campaign(REPO / "dags" / "campaigns" / "nightly.yaml")
    batches: dict[tuple[str, str], set[int]] = defaultdict(set)
    for c in nightly.configs():
        assert c.label.endswith(f"/in{c.input_tokens}-out{c.max_new_tokens}")
        batches[(c.model, f"{c.input_tokens}/{c.max_new_tokens}")].add(c.batch_size)
    published = {"128/128", "128/2048", "2048/128", "2048/2048"}
    for model in nightly.model_names:
        assert {shape for m, shape in batches if m == model} == published
    # the KV-cache limits stated in the file's comments
    assert batches[("llama-2-7b", "128/128")] == {1, 8, 32, 64}
    assert max(batches[("llama-2-7b", "128/2048")]) == 32
    assert max(batches[("llama-2-7b", "2048/2048")]) == 32
    assert max(batches[("llama-3.1-8b", "2048/2048")]) == 64
    assert max(batches[("llama-2-13b", "2048/128")]) == 32
    assert max(batches[("llama-2-13b", "2048/2048")]) == 8
    assert max(batches[("llama-2-70b", "2048/2048")]) == 32
    assert "128/2048, 2048/128 and 2048/2048" in " ".join(nightly.description.split())
