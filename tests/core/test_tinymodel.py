"""The offline tiny model is a well-formed HF model directory, rebuilt when
it was built by the other transformers generation or from another spec."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from bench.backends.inprocess import load_error
from bench.errors import ConfigError
from bench.tinymodel import MARKER, TinyModelSpec, build_tiny_model, recorded_build
from tests.conftest import REPO

SPEC = TinyModelSpec()
# a version of the generation this test does not run under
OTHER_GENERATION = "4.55.4" if transformers.__version__.startswith("5.") else "5.24.0"


def test_loads_through_auto_classes_and_generates(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert tok.padding_side == "left"
    enc = tok(["What is attention?", "Hi"], return_tensors="pt", padding=True)
    assert "token_type_ids" not in enc
    assert enc["input_ids"][0, 0].item() == tok.bos_token_id
    out = model.generate(**enc, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (2, enc["input_ids"].shape[1] + 5)


def test_chat_template_and_generation_config(tiny_model: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith("<s><|system|>\ns</s>") and text.endswith("<|assistant|>\n")
    gen = GenerationConfig.from_pretrained(tiny_model)
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    assert len(set(tok.all_special_ids)) == len(tok.all_special_ids)


def test_build_is_deterministic_and_rebuild_is_a_no_op(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a")
    b = build_tiny_model(tmp_path / "b")
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    before = (a / "model.safetensors").stat().st_mtime_ns
    build_tiny_model(a)
    assert (a / "model.safetensors").stat().st_mtime_ns == before
    assert recorded_build(a) == {"transformers": transformers.__version__, "spec": asdict(SPEC)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no staging dir left


def _record(model_dir: Path, **changes: object) -> None:
    marker = model_dir / MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), **changes}))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"transformers": OTHER_GENERATION}, f"built with transformers {OTHER_GENERATION}"),
        ({"spec": {**asdict(SPEC), "num_layers": 3}}, "built with another spec"),
    ],
)
def test_a_model_from_another_generation_or_spec_is_rebuilt_saying_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, changes: dict[str, object], why: str
) -> None:
    model = build_tiny_model(tmp_path / "m")
    _record(model, **changes)
    (model / "left-by-the-old-build.txt").write_text("stale")
    with caplog.at_level(logging.WARNING, logger="bench.tinymodel"):
        build_tiny_model(model)
    assert [r.getMessage() for r in caplog.records] == [
        f"tiny model in {model} was {why}"
        + (f", this is {transformers.__version__}" if "transformers" in changes else "")
        + (f" {changes['spec']}" if "spec" in changes else "")
        + ": rebuilding it"
    ]
    assert recorded_build(model) == {"transformers": transformers.__version__, "spec": asdict(SPEC)}
    assert not (model / "left-by-the-old-build.txt").exists()  # the old build went whole
    AutoTokenizer.from_pretrained(model)


def test_a_model_from_before_the_marker_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = build_tiny_model(tmp_path / "m")
    (model / MARKER).unlink()
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "bench_tiny_model": True}))
    with caplog.at_level(logging.WARNING, logger="bench.tinymodel"):
        build_tiny_model(model)
    assert "built before bench recorded the transformers version" in caplog.text
    assert recorded_build(model) == {"transformers": transformers.__version__, "spec": asdict(SPEC)}


def test_force_writes_into_unrelated_content_and_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_tiny_model(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    build_tiny_model(tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert recorded_build(tmp_path) is not None
    AutoTokenizer.from_pretrained(tmp_path)


def test_a_load_failure_names_the_generation_that_built_the_tiny_model(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "m")
    _record(model, transformers=OTHER_GENERATION)
    message = str(load_error(str(model), ValueError("Tokenizer class X does not exist")))
    assert message == (
        f"cannot load model {str(model)!r}: Tokenizer class X does not exist (a tiny model "
        f"built with transformers {OTHER_GENERATION}, this is {transformers.__version__}: "
        f"rebuild it with `bench tiny-model {model}`)"
    )
    _record(model, transformers=transformers.__version__)
    assert (
        str(load_error(str(model), ValueError("boom"))) == f"cannot load model {str(model)!r}: boom"
    )


def _bench(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.two_generations
def test_built_under_one_transformers_runs_under_the_other(tmp_path: Path) -> None:
    """With BENCH_OTHER_PYTHON (``make test-tf5`` sets it to the pinned
    ``.venv``'s python): each generation builds, the other runs it."""
    other = os.environ.get("BENCH_OTHER_PYTHON")
    if not other:
        message = "BENCH_OTHER_PYTHON (a python with the other transformers) is not set"
        if os.environ.get("BENCH_CI"):
            pytest.fail(message)
        pytest.skip(message)
    run = ("run", "--device", "cpu", "--limit", "2", "--max-new-tokens", "4", "--no-db")
    for n, (builder, runner) in enumerate(((other, sys.executable), (sys.executable, other))):
        model = tmp_path / f"m{n}"
        assert _bench(builder, "tiny-model", str(model)).returncode == 0
        built_with = recorded_build(model)["transformers"]  # type: ignore[index]
        first = _bench(runner, *run, "--model", str(model))
        assert first.returncode == 0 or "rebuild it with `bench tiny-model" in first.stderr, (
            first.stderr
        )
        proc = _bench(runner, "tiny-model", str(model))
        assert proc.returncode == 0, proc.stderr
        runs_with = recorded_build(model)["transformers"]  # type: ignore[index]
        if built_with.split(".")[0] == runs_with.split(".")[0]:
            assert proc.stderr == "" and first.returncode == 0
        else:
            assert proc.stderr.strip() == (
                f"WARNING bench.tinymodel: tiny model in {model} was built with transformers "
                f"{built_with}, this is {runs_with}: rebuilding it"
            )
        second = _bench(runner, *run, "--model", str(model))
        assert second.returncode == 0, second.stderr
