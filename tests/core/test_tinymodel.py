"""The offline tiny model is a well-formed HF model directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.tinymodel import build_tiny_model


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
    assert json.loads((a / "config.json").read_text())["bench_tiny_model"] is True
