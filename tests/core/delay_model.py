"""A causal LM whose forward pass sleeps a known time: the timing ground truth.

Prefill sleeps ``prefill_ms``, each decode step ``decode_ms``. Token ids are
scripted (``first_token + step``) and sequence ``b`` emits EOS at step
``eos_at[b]`` when given, so EOS handling can be checked exactly; with
``varying_at_step`` the token of that step changes from one process to
the next (a counter in ``counter_file``: outputs that vary run to run with
nothing else changing, as on a non-deterministic card). Every
forward records the host times it started and finished: a token exists from
the end of its forward pass, and generate() hands it to the streamer before
the next one starts, so tests can check each timestamp against that window.

It keeps no KV cache (each step re-sends the prefix, which is how a step is
told from a prefill): ``use_cache=False`` lives in its generation config,
which transformers 4.55 and 5.x both read (5.x drops it from model configs).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast


class DelayConfig(PretrainedConfig):
    model_type = "bench-delay"

    def __init__(
        self,
        vocab_size: int = 512,
        prefill_ms: float = 40.0,
        decode_ms: float = 8.0,
        first_token: int = 20,
        eos_at: list[int] | None = None,
        kill_at_step: int | None = None,
        oom_at_step: int | None = None,
        oom_on_load: bool = False,
        varying_at_step: int | None = None,
        counter_file: str | None = None,
        max_position_embeddings: int = 4096,
        **kwargs: object,
    ) -> None:
        self.vocab_size = vocab_size
        self.prefill_ms = prefill_ms
        self.decode_ms = decode_ms
        self.first_token = first_token
        self.eos_at = eos_at
        self.kill_at_step = kill_at_step  # SIGKILL itself there, like the kernel's OOM killer
        self.oom_at_step = oom_at_step  # raise the allocator's error there, as torch does
        self.oom_on_load = oom_on_load  # ... or when the weights move to the device
        self.varying_at_step = varying_at_step
        self.counter_file = counter_file
        self.max_position_embeddings = max_position_embeddings
        super().__init__(**kwargs)


def _next_token(counter_file: str) -> int:
    """100 + how many models were built from this directory before (one per run)."""
    path = Path(counter_file)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    return 100 + n


class DelayModel(PreTrainedModel, GenerationMixin):
    config_class = DelayConfig
    main_input_name = "input_ids"

    def __init__(self, config: DelayConfig) -> None:
        super().__init__(config)
        self.anchor = nn.Parameter(torch.zeros(1))
        self.forward_starts: list[float] = []
        self.forward_ends: list[float] = []
        self._last_ids: torch.Tensor | None = None
        self._step = 0
        self._varying_token = _next_token(config.counter_file) if config.varying_at_step else 0
        self.post_init()
        self.generation_config.use_cache = False

    def to(self, *args: Any, **kwargs: Any) -> DelayModel:  # type: ignore[override]
        if self.config.oom_on_load:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().to(*args, **kwargs)  # type: ignore[no-any-return]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object
    ):  # type: ignore[no-untyped-def]
        self.forward_starts.append(time.perf_counter())
        batch, length = input_ids.shape
        last = self._last_ids  # without a KV cache each step re-sends the prefix
        prefill = (
            last is None
            or last.shape != (batch, length - 1)
            or not torch.equal(last, input_ids[:, :-1])
        )
        self._last_ids = input_ids.clone()
        self._step = 0 if prefill else self._step + 1
        if self.config.kill_at_step is not None and self._step == self.config.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.config.oom_at_step is not None and self._step == self.config.oom_at_step:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep((self.config.prefill_ms if prefill else self.config.decode_ms) / 1000)
        logits = torch.zeros(batch, length, self.config.vocab_size)
        token = self.config.first_token + self._step
        if self._step == self.config.varying_at_step:
            token = self._varying_token
        logits[:, -1, token] = 10.0
        for b, at in enumerate(self.config.eos_at or []):
            if at is not None and self._step == at:
                logits[b, -1, self.config.eos_token_id] = 20.0
        self.forward_ends.append(time.perf_counter())
        return CausalLMOutputWithPast(logits=logits)


AutoConfig.register("bench-delay", DelayConfig, exist_ok=True)
AutoModelForCausalLM.register(DelayConfig, DelayModel, exist_ok=True)


def save_delay_model(
    out: Path, tokenizer_dir: Path, *, remote_code: bool = False, **config: object
) -> Path:
    """A model dir: the delay model + the tiny model's tokenizer. With
    ``remote_code`` the model's source is saved beside it (``auto_map``), so
    another process loads it with ``trust_remote_code=True``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = DelayConfig(
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        **config,  # type: ignore[arg-type]
    )
    model = DelayModel(cfg)
    if remote_code:
        cfg.register_for_auto_class()
        model.register_for_auto_class("AutoModelForCausalLM")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
