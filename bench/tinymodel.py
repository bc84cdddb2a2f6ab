"""Build a tiny Llama offline: random weights plus a BPE tokenizer trained
on the prompt set, saved as a well-formed Hugging Face model directory.

Tests, the demo and CI need a real model that loads through
``AutoModelForCausalLM``/``AutoTokenizer`` (and can be served by other tools)
without a hub download. Deterministic for a given seed and prompt set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.core.prompts import load_prompt_set
from bench.errors import ConfigError

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


def build_tiny_model(
    out_dir: Path, spec: TinyModelSpec = TinyModelSpec(), *, force: bool = False
) -> Path:
    """Write the model to ``out_dir``; refuses to overwrite unrelated content."""
    out_dir = out_dir.expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        marker = out_dir / "config.json"
        if marker.is_file() and json.loads(marker.read_text()).get("bench_tiny_model"):
            return out_dir  # already built; building is deterministic
        raise ConfigError(f"{out_dir} is not empty (use --force to overwrite)")

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
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    # Mark the directory so a rebuild into it is recognised as harmless.
    cfg_path = out_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["bench_tiny_model"] = True
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return out_dir
