"""The habana backend's host-side plumbing with a real tokenizer and model
on CPU: padding to one static input length, the check that fixes it, and the
clear error when optimum-habana is missing. Loading onto a card and
generate() need Gaudi (see docs/gaudi.md for what ran where)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from bench.backends import create_backend
from bench.backends.base import Request
from bench.backends.habana.backend import HabanaBackend, pad_to_length
from bench.core.config import RunConfig
from bench.core.prompts import Prompt
from bench.errors import ConfigError, DeviceError

TEXTS = ["a short prompt", "a much longer prompt with quite a few more words in it than the first"]


def backend(tiny_model: Path, **options: Any) -> HabanaBackend:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = RunConfig(
        model=str(tiny_model), device="hpu", backend="habana", options=options, max_new_tokens=8
    )
    b = create_backend(config)
    assert isinstance(b, HabanaBackend)
    b.tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="left")
    b.model = AutoModelForCausalLM.from_pretrained(tiny_model)
    return b


def requests() -> list[Request]:
    return [Request(i, Prompt(text=t)) for i, t in enumerate(TEXTS)]


@pytest.mark.slow
def test_pad_to_length_left_pads_without_truncating(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model, padding_side="left")
    lengths = [len(tok(t)["input_ids"]) for t in TEXTS]
    enc = pad_to_length(tok, TEXTS, 40, add_special_tokens=True, token_type_ids=False)
    assert tuple(enc["input_ids"].shape) == (2, 40)
    assert enc["attention_mask"].sum(dim=1).tolist() == lengths
    assert enc["attention_mask"][0, -1] == 1 and enc["attention_mask"][0, 0] == 0  # left padding
    assert "token_type_ids" not in enc
    with pytest.raises(ConfigError, match="longer than the run's padded input length of 3"):
        pad_to_length(tok, TEXTS, 3, add_special_tokens=True, token_type_ids=False)


@pytest.mark.slow
def test_check_fixes_one_input_length_for_the_run(tiny_model: Path) -> None:
    b = backend(tiny_model)
    b.check(requests())
    longest = max(len(b.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert b._input_length == longest

    b = backend(tiny_model, max_input_tokens=64)
    b.check(requests())
    assert b._input_length == 64

    with pytest.raises(ConfigError, match="more than max_input_tokens 4"):
        backend(tiny_model, max_input_tokens=4).check(requests())
    context = b.context_length()
    assert context is not None
    with pytest.raises(ConfigError, match="exceeds the model's context"):
        backend(tiny_model, max_input_tokens=context).check(requests())


@pytest.mark.skipif(
    importlib.util.find_spec("optimum") is not None, reason="optimum is installed here"
)
def test_load_without_optimum_habana_is_a_device_error(tmp_path: Path) -> None:
    b = HabanaBackend(RunConfig(model=str(tmp_path), device="hpu", backend="habana"))
    with pytest.raises(
        DeviceError, match=r"optimum-habana cannot be imported .*pip install -e '\.\[hpu\]'"
    ):
        b.load()
