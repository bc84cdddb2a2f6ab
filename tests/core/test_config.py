"""RunConfig validation and the comparability fingerprint."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bench.core.config import FIELDS, LOAD, MODEL, SLO, RunConfig, column_values
from bench.core.hashing import canonical_json
from bench.errors import ConfigError

BASE = RunConfig(model="m", device="cpu", precision="fp32")
ID = {"prompt_set_sha": "abc", "n_requests": 8}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precision": "fp64"}, "unknown precision 'fp64'"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": -3}, "batch_size must be >= 1"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"max_new_tokens": "many"}, "max_new_tokens must be an integer"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"backend": "tgi"}, "unknown backend 'tgi'"),
        ({"precision": "fp8"}, "fp8 is supported on hpu only"),
        ({"model": "  "}, "model must be a non-empty"),
        ({"request_rate": -1}, "request_rate must be a positive number"),
        ({"concurrency": 4}, "concurrency/request_rate apply to the openai backend"),
        ({"world_size": 2}, "world_size > 1"),
        ({"options": {"do_sampel": True}}, "did you mean 'do_sample'"),
        ({"options": {"do_sample": "yes"}}, "must be bool"),
        ({"options": {"attn_implementation": "magic"}}, "must be one of eager"),
    ],
)
def test_bad_values_give_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        dataclasses.replace(BASE, **changes)
    assert "\n" not in str(info.value)


def test_from_mapping_rejects_unknown_fields_and_coerces_cli_strings() -> None:
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_mapping({"model": "m", "batch": 3})
    assert RunConfig.from_mapping({"model": "m", "batch_size": "4"}).batch_size == 4


def test_fingerprint_is_stable_and_ignores_what_does_not_change_measurements() -> None:
    fp = BASE.fingerprint(**ID)
    assert fp == RunConfig(model="m", device="cpu", precision="fp32").fingerprint(**ID)
    assert len(fp) == 64
    for harmless in (
        {"warmup": 5},
        {"model_path": "/elsewhere/m"},
        {"slo_ttft_ms": 100.0},
        {"prompts": "/other/path/default.txt"},
        {"limit": 99},  # what counts is n_requests
        {"trust_remote_code": True},
    ):
        assert BASE.replace(**harmless).fingerprint(**ID) == fp, harmless


def test_changing_any_measured_input_changes_the_fingerprint() -> None:
    fp = BASE.fingerprint(**ID)
    variants = [
        {"model": "m2"},
        {"precision": "bf16"},
        {"batch_size": 2},
        {"max_new_tokens": 64},
        {"device": "cuda"},
        {"seed": 1},
        {"ignore_eos": False},
        {"options": {"do_sample": True}},
    ]
    seen = {fp}
    for change in variants:
        other = BASE.replace(**change).fingerprint(**ID)
        assert other not in seen, change
        seen.add(other)
    assert BASE.fingerprint(prompt_set_sha="abd", n_requests=8) != fp
    assert BASE.fingerprint(prompt_set_sha="abc", n_requests=9) != fp


def test_auto_device_must_be_resolved_before_fingerprinting() -> None:
    with pytest.raises(ConfigError, match="resolve device"):
        RunConfig(model="m").fingerprint(**ID)


def test_config_is_frozen_deeply_and_round_trips() -> None:
    config = BASE.replace(options={"top_k": 5, "do_sample": True})
    with pytest.raises(TypeError):
        config.options["top_k"] = 6  # type: ignore[index]
    assert RunConfig.from_mapping(config.to_dict()) == config
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_label_names_model_precision_and_load_point() -> None:
    assert RunConfig(model="meta-llama/Llama-2-7b-hf", precision="bf16", batch_size=8).label == (
        "Llama-2-7b-hf/bf16/bs8"
    )


def test_label_ends_in_the_shape_when_the_input_length_is_exact() -> None:
    config = RunConfig(model="m", precision="bf16", batch_size=8, max_new_tokens=2048)
    assert config.label == "m/bf16/bs8"
    assert config.replace(input_tokens=128).label == "m/bf16/bs8/in128-out2048"


def test_input_tokens_enters_the_fingerprint_only_when_set() -> None:
    base = RunConfig(model="m", device="cpu")
    assert "input_tokens" not in base.identity(**ID)
    fps = {base.replace(input_tokens=n).fingerprint(**ID) for n in (128, 2048)}
    assert len(fps) == 2 and base.fingerprint(**ID) not in fps


def test_random_prompts_need_an_input_length() -> None:
    with pytest.raises(ConfigError, match="prompts random needs input_tokens"):
        RunConfig(model="m", prompts="random")
    assert RunConfig(model="m", prompts="random", input_tokens=64).input_tokens == 64
    with pytest.raises(ConfigError, match="input_tokens"):
        RunConfig(model="m", input_tokens=0)


def test_operational_backend_options_stay_out_of_the_fingerprint() -> None:
    endpoint = RunConfig(
        model="m",
        backend="openai",
        device="cuda",
        concurrency=4,
        options={"base_url": "http://a:8000/v1"},
    )
    fp = endpoint.fingerprint(**ID)
    moved_key = endpoint.replace(
        options={**endpoint.options, "api_key_env": "TEAM_KEY", "request_timeout_s": 30.0}
    )
    assert moved_key.fingerprint(**ID) == fp
    other_server = endpoint.replace(options={"base_url": "http://b:8000/v1"})
    assert other_server.fingerprint(**ID) != fp


#: Fingerprints of configurations as they were before any field was added
#: later: new fields must keep them (a new field enters the identity only
#: when it differs from the behaviour that existed before it), or every
#: user's history would restart at the upgrade.
PINNED_FINGERPRINTS = {
    "5d34d827248d0bd408e7d0225a3b5c3ae5792507785a68b13014f6a6ba5dd73b": dict(
        model="meta-llama/Llama-2-7b-hf", device="cpu", precision="fp32", batch_size=4,
        max_new_tokens=16,
    ),
    "d980baef67d3771f009fb1a5c4456f12d17efc51cb29edba87e7a4bf7b856167": dict(
        model="m", backend="openai", device="hpu", precision="bf16", concurrency=8,
        options={"base_url": "http://h:8000/v1", "endpoint": "chat", "api_key_env": "K"},
    ),
    # timing: the default on hpu became dual (issue 16), a different measurement;
    # a run timed by the streamer, as every run was before, keeps its history
    "74d41f2e474763f724739245ff414507030e1084e43bf176a66832354809dd69": dict(
        model="m", backend="habana", device="hpu", precision="fp8", batch_size=8,
        options={"use_hpu_graphs": True, "bucket_size": 128}, timing="stream",
    ),
}  # fmt: skip


@pytest.mark.parametrize("expected", sorted(PINNED_FINGERPRINTS))
def test_existing_histories_keep_their_fingerprint(expected: str) -> None:
    config = RunConfig(**PINNED_FINGERPRINTS[expected])
    assert config.fingerprint(prompt_set_sha="e30f", n_requests=8) == expected


# -- one declaration per field ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 4097}, "batch_size must be <= 4096, got 4097"),
        ({"max_new_tokens": 32769}, "max_new_tokens must be <= 32768, got 32769"),
        ({"warmup": 101}, "warmup must be <= 100, got 101"),
        ({"warmup": -1}, "warmup must be >= 0, got -1"),
        ({"ignore_eos": "yes"}, "ignore_eos must be true or false, got 'yes'"),
        ({"slo_ttft_ms": 0}, "slo_ttft_ms must be a positive number, got 0"),
        ({"options": [1]}, "options must be a mapping, got list"),
    ],
)
def test_declared_bounds_are_enforced(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        BASE.replace(**changes)


@pytest.mark.parametrize("expected", sorted(PINNED_FINGERPRINTS))
def test_a_field_added_later_keeps_histories_where_it_changes_nothing(expected: str) -> None:
    """``timing`` came after histories existed: ``stream``, how every run was
    timed before, leaves the identity as it was (its legacy value); another
    mode measures differently and starts a new history."""
    config = RunConfig(**PINNED_FINGERPRINTS[expected])
    streamed = config.replace(timing="stream")
    assert streamed.fingerprint(prompt_set_sha="e30f", n_requests=8) == expected
    assert "timing" not in streamed.identity(prompt_set_sha="e30f", n_requests=8)
    if config.backend != "openai":  # an endpoint streams: the only mode it has
        dual = config.replace(timing="dual")
        assert dual.fingerprint(prompt_set_sha="e30f", n_requests=8) != expected
        assert dual.identity(prompt_set_sha="e30f", n_requests=8)["timing"] == "dual"
    with pytest.raises(ConfigError, match="unknown timing 'clock'"):
        config.replace(timing="clock")


def test_every_field_is_declared_with_help_title_and_section() -> None:
    assert [f.name for f in FIELDS] == [f.name for f in dataclasses.fields(RunConfig)]
    for f in FIELDS:
        meta = f.setting
        assert meta.help and meta.title and meta.section in (MODEL, LOAD, SLO), f.name
        assert meta.help[0].islower() and not meta.help.endswith("."), f.name
    fingerprinted = {f.name for f in FIELDS if f.setting.fingerprint}
    # (timing, input_tokens and output_lengths away from their legacy values, so that
    # they are in it too)
    identity = BASE.replace(timing="dual", input_tokens=128).identity(**ID)
    identity |= BASE.replace(output_lengths="dataset").identity(**ID)
    assert fingerprinted == set(identity) - {"prompt_set_sha", "n_requests"}


def test_columns_are_the_declared_ones_and_exist_in_the_schema() -> None:
    from tests.conftest import REPO

    columns = column_values(BASE.replace(device="cpu"))
    assert set(columns) == {f.name for f in FIELDS if f.setting.column}
    schema = "\n".join(p.read_text() for p in sorted((REPO / "sql" / "migrations").glob("*.sql")))
    table = schema[schema.index("CREATE TABLE benchmark_config") :]
    for name in columns:
        assert re.search(rf"\n\s+{name}\s", table) or f"ADD COLUMN {name} " in schema, name


@pytest.mark.parametrize("field", ["model", "model_path"])
def test_only_allow_listed_variables_expand(
    field: str, bench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    with pytest.raises(ConfigError) as info:
        BASE.replace(**{field: "/models/${AWS_SECRET_ACCESS_KEY}"})
    assert str(info.value) == (
        f"{field} refers to ${{AWS_SECRET_ACCESS_KEY}}; only these variables expand: "
        "BENCH_HOME, BENCH_MODELS_DIR, HF_HOME"
    )
    monkeypatch.setenv("HF_HOME", "/hf")
    config = BASE.replace(**{field: "${BENCH_HOME}/models/$HF_HOME/m"})
    assert config.load_path == f"{bench_home.resolve()}/models//hf/m"
    assert config.to_dict()[field] == "${BENCH_HOME}/models/$HF_HOME/m"  # stored as written
