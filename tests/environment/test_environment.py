"""The environment record and what changed between records (pure, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.backends.base import BackendInfo
from bench.backends.devices import is_device_model
from bench.backends.revision import model_revision
from bench.environment import (
    PACKAGES,
    capture_environment,
    environment_diff,
    flatten_environment,
    format_changes,
)


def record(**changes: object) -> dict[str, object]:
    """A stored-looking environment row (columns + packages + extra)."""
    env: dict[str, object] = {
        "host": "node-1",
        "device": "hpu",
        "device_name": "HL-225",
        "device_count": 8,
        "driver_version": "1.19.1",
        "runtime_version": "habana-torch-plugin 1.19.1.26",
        "python_version": "3.10.12",
        "platform": "Linux-5.15.0-x86_64",
        "git_sha": "a" * 40,
        "packages": {"torch": "2.6.0", "transformers": "4.55.4", "deepspeed": None},
        "extra": {"lazy_mode": True, "image": "stack-1.21", "kernel": "5.15.0"},
    }
    for key, value in changes.items():
        if key.startswith("packages."):
            env["packages"] = {**env["packages"], key.split(".", 1)[1]: value}  # type: ignore[dict-item]
        elif key.startswith("extra."):
            env["extra"] = {**env["extra"], key.split(".", 1)[1]: value}  # type: ignore[dict-item]
        else:
            env[key] = value
    return env


def test_capture_records_every_new_key_even_when_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_IMAGE", raising=False)
    env = capture_environment("cpu", BackendInfo(model_revision="sha256:0123456789abcdef"))
    for key in ("image", "kernel", "cpu_model", "firmware_version", "model_revision"):
        assert key in env
    assert env["image"] is None  # recorded as unset, not missing
    assert env["model_revision"] == "sha256:0123456789abcdef"
    assert set(env["packages"]) == set(PACKAGES)  # a tracked package that is absent is None
    assert env["packages"]["torch"] is not None and env["kernel"]
    monkeypatch.setenv("BENCH_IMAGE", "llm-bench-hpu:stack-1.22")
    other = capture_environment("cpu", BackendInfo(model_revision="sha256:0123456789abcdef"))
    assert other["image"] == "llm-bench-hpu:stack-1.22"
    assert other["fingerprint"] != env["fingerprint"]


def test_flatten_reads_a_captured_record_and_a_stored_row_alike() -> None:
    captured = {"host": "n", "packages": {"torch": "2.6"}, "extra": {"bridge_env": {"A": "1"}},
                "image": "x", "fingerprint": "f"}  # fmt: skip
    stored = {"host": "n", "packages": {"torch": "2.6"}, "extra": {"bridge_env": {"A": "1"}, "image": "x"},
              "fingerprint": "f", "id": 3}  # fmt: skip
    assert (
        flatten_environment(captured)
        == flatten_environment(stored)
        == {
            "host": "n",
            "packages.torch": "2.6",
            "bridge_env.A": "1",
            "image": "x",
        }
    )


def test_one_package_and_the_image_changed() -> None:
    tonight = record(**{"packages.torch": "2.7.0", "extra.image": "stack-1.22"})
    diff = environment_diff(tonight, [record()] * 13)
    assert diff == {
        "image": {"baseline": ["stack-1.21"], "runs": [13], "current": "stack-1.22"},
        "packages.torch": {"baseline": ["2.6.0"], "runs": [13], "current": "2.7.0"},
    }
    assert format_changes(diff) == "image stack-1.21->stack-1.22, torch 2.6.0->2.7.0"


def test_keys_an_older_tool_did_not_record_are_not_changes() -> None:
    old = record()
    old["extra"] = {"lazy_mode": True}  # written before image/kernel existed
    old["packages"] = {"torch": "2.6.0", "transformers": "4.55.4"}  # before explicit None
    tonight = record(**{"packages.accelerate": "1.10.1"})
    assert environment_diff(tonight, [old] * 14) == {}
    # ... but compared as soon as one baseline record has them
    newer = record(**{"packages.accelerate": None})
    diff = environment_diff(tonight, [old] * 10 + [newer] * 4)
    assert diff == {"packages.accelerate": {"baseline": [None], "runs": [4], "current": "1.10.1"}}
    # and a key tonight's record lacks says nothing either
    tonight_old = record()
    del tonight_old["extra"]["image"]  # type: ignore[attr-defined]
    assert "image" not in environment_diff(tonight_old, [record(**{"extra.image": "other"})])


def test_a_mixed_baseline_lists_its_values_most_frequent_first() -> None:
    tonight = record(host="node-3")
    diff = environment_diff(tonight, [record(host="node-1")] * 9 + [record(host="node-2")] * 5)
    assert diff["host"] == {"baseline": ["node-1", "node-2"], "runs": [9, 5], "current": "node-3"}
    assert format_changes(diff) == "host node-1|node-2->node-3"
    # tonight's value in a mixed baseline is still a difference from part of it
    assert environment_diff(record(host="node-1"), [record(host="node-1"), record(host="node-2")])


def test_the_short_column_orders_by_what_explains_a_step_and_abbreviates() -> None:
    tonight = record(
        git_sha="b" * 40, platform="Linux-6.1", driver_version="1.20.0",
        **{"extra.kernel": "6.1.0", "packages.transformers": "4.56.0", "extra.lazy_mode": False},
    )  # fmt: skip
    diff = environment_diff(tonight, [record()])
    short = format_changes(diff, limit=4)
    assert short == (
        "driver 1.19.1->1.20.0, transformers 4.55.4->4.56.0, git aaaaaaaaaa->bbbbbbbbbb, "
        "kernel 5.15.0->6.1.0, +1 more"
    )  # platform repeats kernel: left out of the short form, kept in the JSON
    assert "platform" in diff
    assert json.loads(json.dumps(diff)) == diff


def test_model_revision_of_a_local_directory_is_a_cheap_content_hash(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 64}')
    weights = model / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * 40_000)  # ~10 MB: sampled, not read whole
    first = model_revision(str(model))
    assert first is not None and first.startswith("sha256:") and len(first) == 23
    assert model_revision(str(model)) == first
    data = bytearray(weights.read_bytes())
    data[0] ^= 1  # retrained weights change bytes everywhere, including the first block
    weights.write_bytes(bytes(data))
    assert model_revision(str(model)) != first
    (model / "config.json").write_text('{"hidden_size": 128}')
    assert model_revision(str(model)) not in (first, None)


def test_model_revision_of_a_hub_snapshot_is_its_commit(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--org--m" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    assert model_revision(str(snapshot)) == commit
    assert model_revision("org/m", commit_hash="fedcba") == "fedcba"
    assert model_revision("org/not-downloaded") is None


@pytest.mark.parametrize(
    ("expected", "found", "match"),
    [
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("H200", "NVIDIA H100 80GB HBM3", False),
        ("gaudi3", "GAUDI3", True),
        ("HL-225", "GAUDI2", True),  # hl-smi's part number for what the bridge calls GAUDI2
        ("hl-325l", "GAUDI3", True),
        ("HL-325L", "GAUDI2", False),
        ("HL-225", "GAUDI3", False),
    ],
)
def test_a_target_names_its_device_model_by_name_or_gaudi_part_number(
    expected: str, found: str, match: bool
) -> None:
    assert is_device_model(expected, found) is match
