"""Shared machinery of in-process backends: batched ``generate()``, timed in
one of three modes (``RunConfig.timing``, README "Timing modes"):

* ``stream``: :class:`~bench.core.streamer.TimingStreamer` reads the host
  clock when each step's tokens reach the host;
* ``events``: a device event per step (:mod:`bench.core.step_events`), read
  after generation; no host sync per step;
* ``dual``: each batch runs twice, bare (one sync at the end: E2E and the
  run's throughput) and streamed (TTFT and ITL).

Subclasses (hf for cpu/cuda, habana for hpu) supply model loading, device
placement, device events and device-specific generate kwargs; batching,
tokenization, the context check and record building are written once here.
Generated ids are read after each generate() call, never inside it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.backends.base import BackendInfo, Progress, Request
from bench.backends.options import COMMON_OPTIONS, OptionSpec
from bench.backends.revision import model_revision
from bench.core.config import RunConfig
from bench.core.prompts import Prompt, batched
from bench.core.prompts.exact import PromptTokens
from bench.core.records import RequestRecord
from bench.errors import ConfigError, DeviceError, ModelLoadError

if TYPE_CHECKING:
    from bench.core.step_events import EventFactory

log = logging.getLogger(__name__)

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def looks_local(spec: str) -> bool:
    """A model spec naming a directory rather than a hub id."""
    return spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().exists()


def transformers_dtype_kwarg() -> str:
    """``dtype`` since transformers 4.56 (``torch_dtype`` before, deprecated after)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def torch_dtype(precision: str) -> Any:
    import torch

    return {
        "fp32": torch.float32,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "fp8": torch.bfloat16,
    }[precision]


def load_error(spec: str, exc: BaseException) -> ModelLoadError:
    from bench.tinymodel import stale_reason

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    # a tiny model written by the other transformers generation fails obscurely
    stale = stale_reason(Path(spec)) if Path(spec).is_dir() else None
    hint = f" (a tiny model {stale}: rebuild it with `bench tiny-model {spec}`)" if stale else ""
    return ModelLoadError(f"cannot load model {spec!r}: {first}{hint or _gated_hint(exc)}")


def _gated_hint(exc: BaseException) -> str:
    """What to do when a gated hub repo refused us for want of a token."""
    text = str(exc).lower()
    if not any(s in text for s in ("gated repo", "401 client error", "access to model")):
        return ""
    from huggingface_hub import get_token

    if get_token():
        return " (a Hugging Face token is set: has its account accepted the model's license?)"
    return (
        " (gated model and no Hugging Face token: set HF_TOKEN, or the Airflow connection"
        ' bench_hf, or stage the weights: docs/gaudi.md "Model weights")'
    )


def _context_of(model_config: Any) -> int | None:
    for key in _CONTEXT_KEYS:
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def local_context_length(model_dir: Path) -> int | None:
    """The context length a local model directory's ``config.json`` states,
    read without transformers (the plan task checks shapes with it); None
    when there is no such file or it states none."""
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    values = [data.get(k) for k in _CONTEXT_KEYS] if isinstance(data, dict) else []
    return next((v for v in values if isinstance(v, int) and v > 0), None)


def load_tokenizer(config: RunConfig) -> tuple[str, Any]:
    """The model's tokenizer, left-padding, and where the weights load from."""
    path = config.load_path
    if looks_local(path) and not Path(path).expanduser().is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    path = str(Path(path).expanduser()) if looks_local(path) else path
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=config.trust_remote_code, padding_side="left"
        )
    except Exception as exc:
        raise load_error(path, exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if config.options.get("chat_template", False) and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"option chat_template is set but the tokenizer of {path} has no chat template"
        )
    return path, tokenizer


class InProcessBackend:
    """Batched generate() over ``config.batch_size`` sequences at a time."""

    name: ClassVar[str] = "inprocess"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = COMMON_OPTIONS

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.model: Any = None
        self.tokenizer: Any = None
        self.generation_config: Any = None
        self._texts: dict[str, str] = {}
        self._templated = bool(config.options.get("chat_template", False))
        self._eos_ids: tuple[int, ...] = ()
        #: What identifies the loaded weights (bench.backends.revision.model_revision).
        self.revision: str | None = None

    # -- hooks for subclasses ---------------------------------------------------------

    def _load_model(self, path: str) -> Any:
        """Return the model, on its device, in eval mode."""
        raise ModelLoadError(f"{type(self).__name__} cannot load models")

    def _device(self) -> Any:
        return self.config.device

    def _encode(self, texts: list[str]) -> Any:
        return self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self._templated
        )

    def _generate_kwargs(self) -> dict[str, Any]:
        return {}

    def _length_kwargs(self, batch: Sequence[Request]) -> dict[str, Any]:
        """generate() length overrides for a batch whose requests ask for
        their own output lengths (``output_lengths: dataset``): the batch runs
        until its longest request (static batching: a finished row keeps
        stepping until generate() returns), each request keeps its own first
        tokens (:meth:`_records`). Empty when every request asks for
        ``max_new_tokens``."""
        cap = self.config.max_new_tokens
        longest = max(r.wanted(cap) for r in batch)
        if longest == cap:
            return {}
        return {
            "max_new_tokens": longest,
            "min_new_tokens": longest if self.config.ignore_eos else None,
        }

    def _grad_mode(self) -> Any:
        """cpu/cuda: ``inference_mode``, which also skips autograd's version
        counters and view tracking (a little less host work per op than the
        ``no_grad`` generate() runs under)."""
        import torch

        return torch.inference_mode()

    def _event_factory(self) -> EventFactory:
        """A timing event on this backend's device (``timing: events``)."""
        raise DeviceError(f"device {self.config.device} has no timing events")

    def _event_flush(self) -> Callable[[], None] | None:
        """What launches queued device work before an event (Habana lazy mode)."""
        return None

    # -- Backend protocol ---------------------------------------------------------------

    def load(self) -> None:
        path = self._load_tokenizer()
        started = time.perf_counter()
        self.model = self._load_model(path)
        log.info("loaded %s in %.1f s", path, time.perf_counter() - started)
        commit = getattr(getattr(self.model, "config", None), "_commit_hash", None)
        self.revision = model_revision(path, commit if isinstance(commit, str) else None)
        self.generation_config = self._generation_config()

    def _load_tokenizer(self) -> str:
        """The tokenizer, left-padding; returns where the weights load from."""
        path, self.tokenizer = load_tokenizer(self.config)
        return path

    @classmethod
    def prompt_rule(cls, config: RunConfig) -> tuple[PromptTokens, int | None]:
        """How this backend's model counts a prompt (its tokenizer, the chat
        template when the option is on) and its context length, read without
        loading weights: token-exact prompts are planned before the model loads."""
        path, tokenizer = load_tokenizer(config)
        context: int | None = None
        try:
            from transformers import AutoConfig

            model_config = AutoConfig.from_pretrained(
                path, trust_remote_code=config.trust_remote_code
            )
            context = _context_of(model_config)
        except Exception as exc:  # the model load reports it properly, with its hint
            raise load_error(path, exc) from None
        return PromptTokens(tokenizer, bool(config.options.get("chat_template", False))), context

    def _generation_config(self) -> Any:
        import copy

        from transformers import GenerationConfig

        base = getattr(self.model, "generation_config", None)
        gen = copy.deepcopy(base) if base is not None else GenerationConfig()
        opts = self.config.options
        n = self.config.max_new_tokens
        gen.max_new_tokens = n
        gen.min_new_tokens = n if self.config.ignore_eos else None
        gen.max_length = None
        gen.do_sample = bool(opts.get("do_sample", False))
        gen.num_beams = 1
        if gen.do_sample:
            for key in ("temperature", "top_p", "top_k"):
                if opts.get(key) is not None:
                    setattr(gen, key, opts[key])
        else:  # keep greedy decoding free of sampling knobs (and their warnings)
            gen.temperature, gen.top_p, gen.top_k = None, None, None
        if gen.pad_token_id is None:
            gen.pad_token_id = self.tokenizer.pad_token_id
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self._eos_ids = (
            tuple(eos) if isinstance(eos, list | tuple) else ((eos,) if eos is not None else ())
        )
        return gen

    def render(self, prompt: Prompt) -> str:
        if self._templated:
            return str(
                self.tokenizer.apply_chat_template(
                    prompt.as_messages(), tokenize=False, add_generation_prompt=True
                )
            )
        return prompt.as_text()

    def context_length(self) -> int | None:
        return _context_of(self.model.config)

    def check(self, requests: Sequence[Request]) -> None:
        """Render every prompt once and check prompt + max_new_tokens fits;
        token-exact prompts (``input_tokens``) must count exactly that here,
        where the model reads them, or the run would record a shape it did
        not measure (and a batch would hold padding)."""
        for request in requests:
            sha = request.prompt.sha
            if sha not in self._texts:
                self._texts[sha] = self.render(request.prompt)
        lengths = [
            len(ids)
            for ids in self.tokenizer(
                list(self._texts.values()), add_special_tokens=not self._templated
            )["input_ids"]
        ]
        wanted = self.config.input_tokens
        if wanted is not None and set(lengths) != {wanted}:
            off = sorted(set(lengths) - {wanted})
            raise ConfigError(
                f"input_tokens {wanted}: {len([n for n in lengths if n != wanted])} prompts "
                f"count {off[:3]} tokens for this model's tokenizer (a prompt set built for "
                "another tokenizer or chat template rule?)"
            )
        longest = max(lengths)
        context = self.context_length()
        if context is not None and longest + self.config.max_new_tokens > context:
            raise ConfigError(
                f"max_new_tokens {self.config.max_new_tokens} + longest prompt {longest} tokens "
                f"exceeds the model's context of {context} tokens"
            )

    def execute(self, requests: Sequence[Request], progress: Progress) -> list[RequestRecord]:
        import torch

        torch.manual_seed(self.config.seed)
        records: list[RequestRecord] = []
        for batch in batched(requests, self.config.batch_size):
            records.extend(self.generate_batch(batch))
            progress(len(batch))
        return records

    def generate_batch(self, batch: Sequence[Request]) -> list[RequestRecord]:
        """One batch in the run's timing mode; its requests share one send time."""
        texts = [self._texts.get(r.prompt.sha) or self.render(r.prompt) for r in batch]
        timing = self.config.effective_timing
        if timing == "events":
            return self._events_batch(batch, texts)
        if timing == "dual":
            return self._dual_batch(batch, texts)
        return self._streamed_batch(batch, texts)

    def _generate(self, enc: Any, **kwargs: Any) -> Any:
        """generate()'s token ids, (batch, prompt + generated), on the device."""
        with self._grad_mode():
            out = self.model.generate(
                **enc, generation_config=self.generation_config, **self._generate_kwargs(), **kwargs
            )
        return getattr(out, "sequences", out)  # a ModelOutput if the config asks for one

    def _streamed_batch(
        self, batch: Sequence[Request], texts: list[str], bare: tuple[float, float] | None = None
    ) -> list[RequestRecord]:
        from bench.core.streamer import TimingStreamer

        streamer = TimingStreamer(time.perf_counter)
        t_send = time.perf_counter()
        enc = self._encode(texts).to(self._device())
        self._generate(enc, streamer=streamer, **self._length_kwargs(batch))
        timings = streamer.sequences(
            len(batch), eos_token_ids=self._eos_ids, stop_at_eos=not self.config.ignore_eos
        )
        ids = streamer.token_ids([t.output_tokens for t in timings])
        return self._records(batch, enc, t_send, [t.token_times for t in timings], ids, bare)

    def _events_batch(self, batch: Sequence[Request], texts: list[str]) -> list[RequestRecord]:
        from transformers import StoppingCriteriaList

        from bench.core.step_events import EventTimeline
        from bench.core.streamer import output_lengths

        timeline = EventTimeline(
            self._event_factory(), self.config.max_new_tokens, self._event_flush()
        )
        t_send = timeline.start(time.perf_counter)
        enc = self._encode(texts).to(self._device())
        out = self._generate(
            enc,
            stopping_criteria=StoppingCriteriaList([timeline.criterion]),
            **self._length_kwargs(batch),
        )
        generated = out[:, enc["input_ids"].shape[1] :].cpu()  # (B, steps)
        # a loop that checks stopping one step late may undo its last step
        times = timeline.token_times(t_send)[: generated.shape[1]]
        tokens = generated[:, : len(times)]
        lengths = [len(times)] * len(batch)
        if not self.config.ignore_eos and self._eos_ids and times:
            lengths = output_lengths(tokens.T, self._eos_ids)
        ids = [tuple(row[:n]) for row, n in zip(tokens.tolist(), lengths, strict=True)]
        return self._records(batch, enc, t_send, [times[:n] for n in lengths], ids)

    def _dual_batch(self, batch: Sequence[Request], texts: list[str]) -> list[RequestRecord]:
        """Bare pass, then the same requests streamed. With sampling, both
        passes start from one seed, so they generate the same tokens."""
        import torch

        sampling = bool(self.generation_config.do_sample)
        seed = int(torch.randint(2**62, ())) if sampling else 0
        if sampling:
            torch.manual_seed(seed)
        bare_send = time.perf_counter()
        enc = self._encode(texts).to(self._device())
        self._generate(enc, **self._length_kwargs(batch)).cpu()  # the bare pass's one sync
        bare = (bare_send, time.perf_counter())
        if sampling:
            torch.manual_seed(seed)
        return self._streamed_batch(batch, texts, bare)

    def _records(
        self,
        batch: Sequence[Request],
        enc: Any,
        t_send: float,
        token_times: Sequence[tuple[float, ...]],
        ids: Sequence[tuple[int, ...]],
        bare: tuple[float, float] | None = None,
    ) -> list[RequestRecord]:
        input_tokens = enc["attention_mask"].sum(dim=1).tolist()
        bare_send, bare_done = bare if bare is not None else (None, None)
        cap = self.config.max_new_tokens
        records = []
        for request, n_in, times, out_ids in zip(
            batch, input_tokens, token_times, ids, strict=True
        ):
            n = min(len(times), request.wanted(cap))  # a request keeps the tokens it asked for
            records.append(
                RequestRecord(
                    request_index=request.index,
                    prompt_sha=request.prompt.sha,
                    input_tokens=int(n_in),
                    output_tokens=n,
                    t_send=t_send,
                    token_times=tuple(times[:n]),
                    bare_t_send=bare_send,
                    bare_t_done=bare_done,
                    output_token_ids=tuple(out_ids[:n]),
                )
            )
        return records

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> int | None:
        return None

    def power_sampler(self) -> Any:
        return None

    def info(self) -> BackendInfo:
        return BackendInfo(model_revision=self.revision)

    def close(self) -> None:
        self.model = None
