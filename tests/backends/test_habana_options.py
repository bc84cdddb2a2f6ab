"""Campaign options -> the exact optimum-habana generate()/model settings.

Runs anywhere: the mapping is pure (bench.backends.habana.options); the habana
backend only applies it on a Gaudi card.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.backends import get_spec
from bench.backends.habana.options import (
    HABANA_OPTIONS,
    RUN_GENERATION_FLAGS,
    bridge_env_defaults,
    fixed_input_length,
    gaudi_settings,
    graph_env_defaults,
    lazy_mode_from_env,
)
from bench.core.config import RunConfig
from bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

#: Attributes GaudiGenerationConfig.__init__ sets in optimum-habana 1.21.2
#: (optimum/habana/transformers/generation/configuration_utils.py), plus
#: transformers' own use_cache. A settings key outside this set would be
#: silently ignored by generate(), so the mapping must stay inside it.
GAUDI_GENERATION_CONFIG_ATTRS = {
    "trim_logits", "static_shapes", "ignore_eos", "attn_softmax_bf16", "limit_hpu_graphs",
    "clear_hpu_graphs_cache", "reuse_cache", "bucket_size", "bucket_internal", "reduce_recompile",
    "use_flash_attention", "flash_attention_recompute", "flash_attention_causal_mask",
    "flash_attention_fast_softmax", "use_flex_attention", "use_fused_rope", "valid_sequence_lengths",
    "attn_batch_split", "decode_attn_batch_split", "logits_bf16", "use_cache",
}  # fmt: skip


def settings(options: dict[str, Any] | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "precision": "bf16",
        "ignore_eos": True,
        "lazy_mode": True,
        "model_optimized": True,
    }
    args.update(kw)
    return gaudi_settings(options or {}, **args)


def config(options: dict[str, Any] | None = None, **kw: Any) -> RunConfig:
    data: dict[str, Any] = {
        "model": "llama",
        "device": "hpu",
        "backend": "habana",
        "precision": "bf16",
    }
    data.update(kw)
    return RunConfig(**data, options=options or {})


def test_defaults_are_run_generation_performance_settings() -> None:
    """No options = what optimum-habana's README commands run: HPU graphs,
    KV cache, static shapes, lazy mode, fixed output length."""
    s = settings()
    assert s.generation_config == {
        "use_cache": True,
        "static_shapes": True,
        "bucket_size": -1,
        "bucket_internal": False,
        "reuse_cache": False,
        "reduce_recompile": False,
        "trim_logits": False,
        "attn_softmax_bf16": False,
        "limit_hpu_graphs": False,
        "clear_hpu_graphs_cache": False,
        "use_flash_attention": False,
        "flash_attention_recompute": False,
        "flash_attention_causal_mask": False,
        "flash_attention_fast_softmax": False,
        "ignore_eos": True,
        "valid_sequence_lengths": None,
    }
    assert s.generate_kwargs == {"lazy_mode": True, "hpu_graphs": True, "ignore_eos": True}
    assert s.wrap_in_hpu_graph and not s.deepspeed_graphs
    assert s.notes == ()


def test_tuned_options_map_one_to_one() -> None:
    s = settings(
        {
            "use_hpu_graphs": True,
            "limit_hpu_graphs": True,
            "reuse_cache": True,
            "bucket_size": 128,
            "bucket_internal": True,
            "trim_logits": True,
            "attn_softmax_bf16": True,
            "use_flash_attention": True,
            "flash_attention_recompute": True,
            "flash_attention_causal_mask": True,
        },
        precision="fp8",
        ignore_eos=False,
    )
    assert s.generation_config == {
        "use_cache": True,
        "static_shapes": True,
        "bucket_size": 128,
        "bucket_internal": True,
        "reuse_cache": True,
        "reduce_recompile": False,
        "trim_logits": True,
        "attn_softmax_bf16": True,
        "limit_hpu_graphs": True,
        "clear_hpu_graphs_cache": False,
        "use_flash_attention": True,
        "flash_attention_recompute": True,
        "flash_attention_causal_mask": True,
        "flash_attention_fast_softmax": True,  # run_generation's default with flash attention
        "ignore_eos": False,
        "valid_sequence_lengths": None,
    }
    assert s.generate_kwargs == {"lazy_mode": True, "hpu_graphs": True, "ignore_eos": False}


def test_every_mapped_attribute_exists_on_gaudi_generation_config() -> None:
    s = settings({"use_flash_attention": True, "bucket_size": 64, "bucket_internal": True})
    assert set(s.generation_config) <= GAUDI_GENERATION_CONFIG_ATTRS


def test_explicit_fast_softmax_wins() -> None:
    s = settings({"use_flash_attention": True, "flash_attention_fast_softmax": False})
    assert s.generation_config["flash_attention_fast_softmax"] is False


def test_graphs_off_means_plain_forward() -> None:
    s = settings({"use_hpu_graphs": False, "use_kv_cache": False})
    assert s.generate_kwargs["hpu_graphs"] is False
    assert not s.wrap_in_hpu_graph
    assert s.generation_config["use_cache"] is False


def test_model_without_static_shape_support_drops_buckets_with_a_note() -> None:
    """run_generation.py: static_shapes and bucket_size only for optimized models."""
    s = settings({"bucket_size": 128}, model_optimized=False)
    assert s.generation_config["static_shapes"] is False
    assert s.generation_config["bucket_size"] == -1
    assert any("bucket_size ignored" in n for n in s.notes)


def test_eager_mode_turns_hpu_graphs_off() -> None:
    s = settings({"limit_hpu_graphs": True}, lazy_mode=False)
    assert s.generate_kwargs == {"lazy_mode": False, "hpu_graphs": False, "ignore_eos": True}
    assert s.generation_config["limit_hpu_graphs"] is False
    assert not s.wrap_in_hpu_graph
    assert any("lazy mode" in n for n in s.notes)


def test_tensor_parallel_uses_deepspeed_graphs_not_wrap() -> None:
    s = settings(world_size=8)
    assert s.deepspeed_graphs and not s.wrap_in_hpu_graph


def test_bad_option_name_rejected_through_run_config() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown habana option 'use_hpu_graph' \(did you mean 'use_hpu_graphs'\?\)",
    ):
        config({"use_hpu_graph": True})


def test_bad_option_type_rejected_through_run_config() -> None:
    with pytest.raises(ConfigError, match=r"habana option 'bucket_size' must be int"):
        config({"bucket_size": "128"})
    with pytest.raises(ConfigError, match=r"'use_kv_cache' must be bool"):
        config({"use_kv_cache": 1})


@pytest.mark.parametrize(
    ("options", "kw", "message"),
    [
        (
            {"use_hpu_graphs": False, "limit_hpu_graphs": True},
            {},
            "'limit_hpu_graphs' needs use_hpu_graphs",
        ),
        ({"bucket_internal": True}, {}, "'bucket_internal' needs a bucket_size"),
        (
            {"bucket_internal": True, "bucket_size": 64, "use_kv_cache": False},
            {},
            "needs use_kv_cache",
        ),
        ({"reuse_cache": True, "bucket_size": 128}, {}, "needs bucket_internal"),
        ({"reuse_cache": True, "use_kv_cache": False}, {}, "'reuse_cache' needs use_kv_cache"),
        ({"reduce_recompile": True}, {}, "'reduce_recompile' needs a bucket_size"),
        ({"bucket_size": 0}, {}, "'bucket_size' must be -1"),
        ({"flash_attention_recompute": True}, {}, "no effect without use_flash_attention"),
        ({"attn_softmax_bf16": True}, {"precision": "fp32"}, "needs precision bf16 or fp8"),
        ({"max_input_tokens": 0}, {}, "'max_input_tokens' must be >= 1"),
        (
            {"fp8_calibration_requests": 0},
            {"precision": "fp8"},
            "'fp8_calibration_requests' must be >= 1",
        ),
        ({}, {"precision": "fp32", "world_size": 8}, "tensor parallel"),
    ],
)
def test_option_combinations_rejected_before_anything_loads(
    options: dict[str, Any], kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(options, **kw)


def test_nightly_campaign_options_are_valid_for_every_config() -> None:
    """The shipped Gaudi campaign passes the same validation the DAG runs."""
    campaign = yaml.safe_load((REPO / "dags" / "campaigns" / "nightly.yaml").read_text())
    assert campaign["backend"] == "habana"
    seen = 0
    for model in campaign["models"]:
        options = {**(campaign.get("options") or {}), **(model.get("options") or {})}
        for precision in model.get("precisions", campaign["precisions"]):
            config(
                options,
                model=model["name"],
                precision=precision,
                world_size=model.get("world_size", 1),
            )
            seen += 1
    assert seen >= 2


def test_option_names_are_run_generation_flag_names() -> None:
    assert set(RUN_GENERATION_FLAGS) == set(HABANA_OPTIONS)
    for name, flag in RUN_GENERATION_FLAGS.items():
        assert flag is None or flag == f"--{name}"
    assert set(get_spec("habana").options()) >= set(HABANA_OPTIONS)


def test_docs_table_lists_every_option_with_its_default() -> None:
    doc = (REPO / "docs" / "gaudi.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| `")}
    for name, spec in HABANA_OPTIONS.items():
        row = rows.get(f"`{name}`")
        assert row is not None, f"docs/gaudi.md has no table row for {name}"
        flag = RUN_GENERATION_FLAGS[name]
        assert (f"`{flag}`" if flag else "—") in row
        assert f"`{_rendered(spec.default)}`" in row, f"default of {name} missing from its row"


def _rendered(default: Any) -> str:
    if default is None:
        return "auto"
    return str(default).lower() if isinstance(default, bool) else str(default)


def test_fixed_input_length() -> None:
    assert fixed_input_length(37, max_input_tokens=None, max_new_tokens=16, context=128) == 37
    assert fixed_input_length(37, max_input_tokens=64, max_new_tokens=16, context=128) == 64
    with pytest.raises(ConfigError, match="more than max_input_tokens 32"):
        fixed_input_length(37, max_input_tokens=32, max_new_tokens=16, context=None)
    with pytest.raises(ConfigError, match="exceeds the model's context of 128"):
        fixed_input_length(37, max_input_tokens=120, max_new_tokens=16, context=128)


def test_bridge_env_defaults_lazy_mode_and_user_values_win() -> None:
    assert bridge_env_defaults({}) == {
        "PT_HPU_LAZY_MODE": "1",
        "EXPERIMENTAL_WEIGHT_SHARING": "FALSE",
    }
    assert bridge_env_defaults({"WORLD_SIZE": "8"})["PT_HPU_ENABLE_LAZY_COLLECTIVES"] == "true"
    assert "PT_HPU_LAZY_MODE" not in bridge_env_defaults({"PT_HPU_LAZY_MODE": "0"})
    assert lazy_mode_from_env({}) and not lazy_mode_from_env({"PT_HPU_LAZY_MODE": "0"})


def test_graph_env_rule_of_run_generation() -> None:
    wanted = {
        "use_hpu_graphs": True,
        "limit_hpu_graphs": True,
        "bucket_internal": True,
        "bucket_size": 64,
    }
    assert graph_env_defaults(wanted, {}) == {"PT_HPUGRAPH_DISABLE_TENSOR_CACHE": "1"}
    assert graph_env_defaults({**wanted, "reuse_cache": True}, {}) == {}
    assert graph_env_defaults(wanted, {"PT_HPUGRAPH_DISABLE_TENSOR_CACHE": "0"}) == {}


def test_backend_module_imports_nothing_heavy() -> None:
    """The registry imports backends to read OPTIONS (DAG parsing, the CLI)."""
    code = (
        "import sys, bench.backends.habana.backend, bench.backends.habana.fp8, bench.backends.habana.launch, bench.backends.habana.hlsmi\n"
        "heavy = [m for m in ('torch', 'transformers', 'habana_frameworks', 'optimum', 'deepspeed',"
        " 'neural_compressor') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
