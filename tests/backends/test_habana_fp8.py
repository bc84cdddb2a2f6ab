"""fp8: the shipped INC configs and the per-model measurement cache.

The two-pass file flow (measure -> statistics -> promote -> quantize) also
runs here with the real Intel Neural Compressor on CPU (its QDQ mode and a
power-of-two scale method, since the shipped maxabs_hw scales are HPU-only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.backends.habana import fp8
from bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {
    "torch": "2.10.0+hpu",
    "habana-torch-plugin": "1.24.0.1007",
    "optimum-habana": "1.21.2",
    "neural-compressor-pt": "3.7",
    "transformers": "4.55.4",
}
CALIBRATION = {"prompt_set_sha": "ab" * 32, "requests": 16, "batch_size": 4, "max_new_tokens": 128}


def plan(**changes: Any) -> fp8.Measurement:
    args: dict[str, Any] = {
        "model": "meta-llama/Llama-2-7b-hf",
        "model_path": "meta-llama/Llama-2-7b-hf",
        "device_name": "GAUDI2",
        "world_size": 1,
        "calibration": CALIBRATION,
        "versions": VERSIONS,
    }
    args.update(changes)
    return fp8.plan_measurement(**args)


@pytest.mark.parametrize(
    ("name", "mode"), [(fp8.MEASURE_CONFIG, "MEASURE"), (fp8.QUANT_CONFIG, "QUANTIZE")]
)
def test_quant_configs_carry_the_keys_inc_needs(name: str, mode: str) -> None:
    data = fp8.load_template(name)
    assert data["mode"] == mode
    assert data["method"] == "HOOKS"
    assert data["observer"] == "maxabs"
    for key in ("allowlist", "blocklist"):
        assert data[key] == {"types": [], "names": []}  # empty allowlist: every supported module
    assert isinstance(data["dump_stats_path"], str)
    if mode == "QUANTIZE":
        assert data["scale_method"] == "maxabs_hw"


def test_quant_configs_are_package_data() -> None:
    package_data = (REPO / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    assert '"backends/habana/quant/*.json"' in package_data.split("[")[1]
    shipped = sorted(p.name for p in fp8.QUANT_TEMPLATES.glob("*.json"))
    assert shipped == sorted([fp8.MEASURE_CONFIG, fp8.QUANT_CONFIG])


def test_same_model_and_versions_reuse_the_directory(bench_home: Path) -> None:
    first = plan()
    assert first.final.parent == bench_home / "quant" / "meta-llama--Llama-2-7b-hf"
    assert first.needed
    fp8.mark_done(first.final, 0)
    again = plan()
    assert again.final == first.final and again.key == first.key
    assert not again.needed  # a later night reuses it


@pytest.mark.parametrize(
    "change",
    [
        {"versions": {**VERSIONS, "optimum-habana": "1.21.3"}},
        {"versions": {**VERSIONS, "habana-torch-plugin": "1.25.0.100"}},
        {"versions": {k: v for k, v in VERSIONS.items() if k != "neural-compressor-pt"}},
        {"device_name": "GAUDI3"},
        {"world_size": 8},
        {"model_path": "/models/llama-2-7b"},
        {"calibration": {**CALIBRATION, "requests": 32}},
    ],
)
def test_changed_stack_or_inputs_get_a_new_directory(change: dict[str, Any]) -> None:
    base = plan()
    fp8.mark_done(base.final, 0)
    changed = plan(**change)
    assert changed.final != base.final
    assert changed.needed


def test_where_the_stats_live_is_not_part_of_the_key() -> None:
    template = fp8.load_template(fp8.MEASURE_CONFIG)
    kw: dict[str, Any] = {
        "model_path": "m", "versions": VERSIONS, "device_name": "GAUDI2", "world_size": 1, "calibration": {},
    }  # fmt: skip
    a = fp8.measurement_key(**kw, measure_config=template)
    b = fp8.measurement_key(
        **kw, measure_config={**template, "dump_stats_path": "/elsewhere/measure"}
    )
    c = fp8.measurement_key(**kw, measure_config={**template, "observer": "shape"})
    assert a == b != c


def test_stack_versions_reads_installed_packages() -> None:
    versions = fp8.stack_versions()
    assert versions["torch"] and versions["transformers"]
    assert "optimum-habana" not in versions  # not installed here


def test_render_config_points_statistics_into_the_directory(tmp_path: Path) -> None:
    path = fp8.render_config(fp8.QUANT_CONFIG, tmp_path / "k")
    data = json.loads(path.read_text())
    assert path == tmp_path / "k" / fp8.QUANT_CONFIG
    assert data["dump_stats_path"] == str(tmp_path / "k" / "stats" / "measure")
    assert data["mode"] == "QUANTIZE"
    assert (tmp_path / "k" / "stats").is_dir()


def test_promote_first_finished_measurement_wins(tmp_path: Path) -> None:
    final = tmp_path / "quant" / "m" / "key"
    a, b = fp8.staging_dir(final, "p29500"), fp8.staging_dir(final, "p29501")
    for staging in (a, b):
        for rank in (0, 1):
            fp8.mark_done(staging, rank)
        (staging / "who").write_text(staging.name)
    assert fp8.promote(a, final, 2) == final
    assert fp8.promote(b, final, 2) == final
    assert (final / "who").read_text() == a.name
    assert not a.exists() and not b.exists()
    assert fp8.is_complete(final, 2)


def test_promote_refuses_an_incomplete_measurement(tmp_path: Path) -> None:
    final = tmp_path / "key"
    staging = fp8.staging_dir(final, "pid1")
    fp8.mark_done(staging, 0)
    with pytest.raises(ConfigError, match="incomplete"):
        fp8.promote(staging, final, 2)
    assert not final.exists()


def test_model_slug() -> None:
    assert fp8.model_slug("meta-llama/Llama-2-7b-hf") == "meta-llama--Llama-2-7b-hf"
    assert fp8.model_slug("/models/llama 2/") == "models--llama-2"
    assert fp8.model_slug("///") == "model"
