"""Build a tiny Llama offline: random weights plus a BPE tokenizer trained
on the prompt set, saved as a well-formed Hugging Face model directory.

Tests, the demo and CI need a real model that loads through
``AutoModelForCausalLM``/``AutoTokenizer`` (and can be served by other tools)
without a hub download. Deterministic for a given seed and prompt set.

The files ``save_pretrained`` writes depend on the transformers generation:
a directory written by 5.x names a tokenizer class 4.x does not have
(``TokenizersBackend``). So ``bench_tiny_model.json`` records the spec and
the transformers version a directory was built with, and an existing one is
reused only when both match (the major version, for transformers); otherwise
it is rebuilt, saying why in one line. A build goes to a staging directory
first: a crash never leaves a half-written model behind the marker.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.core.prompts import load_prompt_set
from bench.errors import ConfigError

log = logging.getLogger(__name__)

#: Written last into every directory this module builds.
MARKER = "bench_tiny_model.json"

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# Zephyr-like turns; ends with the assistant tag when a reply is wanted.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 176
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0
    prompts: str = "default"


def _train_tokenizer(spec: TinyModelSpec):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = [p.as_text() for p in load_prompt_set(spec.prompts).prompts]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=[UNK, BOS, EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return tok


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def recorded_build(model_dir: Path) -> dict[str, Any] | None:
    """What built ``model_dir`` (``{"transformers": ..., "spec": {...}}``), or
    None when this module did not. A directory from before the marker file
    (its config.json says ``bench_tiny_model``) records neither."""
    marker = model_dir / MARKER
    if marker.is_file():
        recorded: dict[str, Any] = json.loads(marker.read_text())
        return recorded
    config = model_dir / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("bench_tiny_model"):
        return {"transformers": None, "spec": None}
    return None


def stale_reason(model_dir: Path, spec: TinyModelSpec | None = None) -> str | None:
    """Why the tiny model in ``model_dir`` does not fit this transformers (and
    ``spec``, when given); None when it does or when it is no tiny model."""
    recorded = recorded_build(model_dir)
    if recorded is None:
        return None
    built_with, running = recorded.get("transformers"), _transformers_version()
    if built_with is None:
        return "built before bench recorded the transformers version of a tiny model"
    if _major(built_with) != _major(running):
        return f"built with transformers {built_with}, this is {running}"
    if spec is not None and recorded.get("spec") != asdict(spec):
        return f"built with another spec {recorded.get('spec')}"
    return None


def build_tiny_model(
    out_dir: Path, spec: TinyModelSpec = TinyModelSpec(), *, force: bool = False
) -> Path:
    """Write the model to ``out_dir``, or reuse the one there when it was built
    from ``spec`` under this transformers major version; refuses to overwrite
    unrelated content unless ``force``."""
    out_dir = out_dir.expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory")
    ours = recorded_build(out_dir) is not None
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        if not ours:
            raise ConfigError(f"{out_dir} is not empty (use --force to overwrite)")
        reason = stale_reason(out_dir, spec)
        if reason is None:
            return out_dir  # already built; building is deterministic
        log.warning("tiny model in %s was %s: rebuilding it", out_dir, reason)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would travel with the rename
    try:
        _write_model(staging, spec)
        if ours:
            shutil.rmtree(out_dir)
        elif out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        if out_dir.exists():  # unrelated content the caller forced us to overwrite
            for built in staging.iterdir():
                os.replace(built, out_dir / built.name)
        else:
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _write_model(out_dir: Path, spec: TinyModelSpec) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(spec),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=spec.max_position_embeddings,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    ids: dict[str, int] = {}
    for name in (BOS, EOS, PAD):
        token_id = tokenizer.convert_tokens_to_ids(name)
        assert isinstance(token_id, int)  # one token in, one id out (the typing says "or a list")
        ids[name] = token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=ids[EOS], pad_token_id=ids[PAD], do_sample=False
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    record = {"transformers": _transformers_version(), "spec": asdict(spec)}
    (out_dir / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
