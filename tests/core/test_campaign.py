"""Campaign parsing, matrix expansion, overrides and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bench.campaign import CampaignError, load_campaign, parse_campaign

BASE = {
    "device": "cpu",
    "precisions": ["fp32", "bf16"],
    "batch_sizes": [1, 4, 16],
    "models": [
        {"name": "small", "path": "/m/small"},
        {"name": "big", "max_batch_size": 4, "precisions": ["bf16"]},
    ],
}


def test_matrix_expansion_with_overrides_and_max_batch() -> None:
    c = parse_campaign("t", BASE)
    labels = [cfg.label for cfg in c.configs()]
    assert labels == [
        "small/fp32/bs1",
        "small/fp32/bs4",
        "small/fp32/bs16",
        "small/bf16/bs1",
        "small/bf16/bs4",
        "small/bf16/bs16",
        "big/bf16/bs1",
        "big/bf16/bs4",
    ]
    first = c.configs()[0]
    assert first.model_path == "/m/small" and first.device == "cpu" and first.ignore_eos
    assert c.dag_id == "llm_bench_t"


def test_exclusions_and_option_merging() -> None:
    data = {
        **BASE,
        "options": {"do_sample": False, "top_k": 3},
        "exclude": [{"model": "small", "batch_size": 16}, {"precision": "fp32", "batch_size": 4}],
    }
    data["models"] = [{**BASE["models"][0], "options": {"top_k": 7}}, BASE["models"][1]]
    configs = parse_campaign("t", data).configs()
    labels = {c.label for c in configs}
    assert "small/bf16/bs16" not in labels and "small/fp32/bs4" not in labels
    assert "small/bf16/bs4" in labels
    assert dict(configs[0].options) == {"do_sample": False, "top_k": 7}


def test_trigger_overrides_select_and_filter() -> None:
    c = parse_campaign("t", BASE)
    o = c.with_overrides(
        {"models": ["big"], "precisions": ["bf16"], "batch_sizes": [1], "limit": 3}
    )
    assert [x.label for x in o.configs()] == ["big/bf16/bs1"]
    assert o.configs()[0].limit == 3
    with pytest.raises(CampaignError, match=r"models: 'nope'; this campaign has: small, big"):
        c.with_overrides({"models": ["nope"]})
    with pytest.raises(CampaignError, match="unknown parameter 'colour'"):
        c.with_overrides({"colour": "red"})
    with pytest.raises(CampaignError, match="matrix is empty"):
        c.with_overrides({"models": ["big"], "batch_sizes": [16]})
    with pytest.raises(CampaignError, match="precisions: unknown value"):
        c.with_overrides({"precisions": ["fp4"]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": []}, "models: at least one model is required"),
        ({"precisions": ["fp9"]}, r"precisions: unknown value\(s\) 'fp9'"),
        ({"batch_sizes": [0]}, "batch_sizes: expected integers >= 1"),
        ({"device": "auto"}, "device: unknown value 'auto'"),
        ({"limt": 3}, "limt: unknown field"),
        ({"max_new_tokens": "lots"}, "max_new_tokens: expected int"),
        ({"models": [{"name": "a", "batch_szes": [1]}]}, r"models\[0\].batch_szes: unknown field"),
        ({"models": [{"name": "a"}, {"name": "a"}]}, "duplicate model name"),
        (
            {"precisions": ["fp8"]},
            r"models\[0\] \(small\) x fp8 x batch_size=1: precision fp8 is supported on hpu only",
        ),
        ({"options": {"top_kk": 1}}, "did you mean 'top_k'"),
        ({"exclude": [{"colour": 1}]}, r"exclude\[0\]"),
    ],
)
def test_errors_name_file_field_and_problem(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert re.search(message, text), text


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: a\n  precisions: [bf16\n")
    with pytest.raises(CampaignError, match=r"bad.yaml:\d+: invalid YAML"):
        load_campaign(path)


def test_shipped_campaigns_parse() -> None:
    from tests.conftest import REPO

    smoke = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    assert smoke.schedule is None and smoke.device == "cpu" and len(smoke.configs()) >= 2
