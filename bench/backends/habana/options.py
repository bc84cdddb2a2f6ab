"""Gaudi tuning options: campaign ``options:`` -> optimum-habana ``generate()``.

The habana backend accepts the knobs users know from optimum-habana's
``examples/text-generation/run_generation.py``, under the same names. This
module is pure (no torch, no habana import) so the mapping from options to
the exact ``GaudiGenerationConfig`` attributes and ``generate()`` keyword
arguments is tested on any machine; ``bench.backends.habana.backend`` only applies
what :func:`gaudi_settings` returns.

Where run_generation.py silently drops a flag that cannot take effect (e.g.
``--limit_hpu_graphs`` without ``--use_hpu_graphs``), this module rejects the
combination instead: a benchmark must measure what its config says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.backends.options import COMMON_OPTIONS, OptionSpec
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.core.config import RunConfig

#: Options of the habana backend (on top of the in-process COMMON_OPTIONS).
HABANA_OPTIONS: dict[str, OptionSpec] = {
    "use_hpu_graphs": OptionSpec(
        bool, True, "capture the forward pass in HPU graphs and replay it"
    ),
    "limit_hpu_graphs": OptionSpec(
        bool, False, "skip HPU graphs for the first token (prefill) to save memory"
    ),
    "clear_hpu_graphs_cache": OptionSpec(bool, False, "clear the HPU graphs cache"),
    "use_kv_cache": OptionSpec(bool, True, "use the key/value cache for decoding"),
    "reuse_cache": OptionSpec(
        bool, False, "preallocate the KV cache once and reuse it (saves memory)"
    ),
    "bucket_size": OptionSpec(
        int,
        -1,
        "grow static shapes in steps of this many tokens (-1: allocate prompt + max_new_tokens)",
    ),
    "bucket_internal": OptionSpec(bool, False, "split the KV sequence into buckets during decode"),
    "reduce_recompile": OptionSpec(
        bool, False, "preprocess on the host to avoid recompiles (needs bucket_size)"
    ),
    "trim_logits": OptionSpec(
        bool, False, "compute logits of the last token only in the first step"
    ),
    "attn_softmax_bf16": OptionSpec(bool, False, "run the attention softmax in bf16"),
    "use_flash_attention": OptionSpec(
        bool, False, "Habana fused scaled-dot-product (flash) attention"
    ),
    "flash_attention_recompute": OptionSpec(
        bool, False, "flash attention in recompute mode for the first token"
    ),
    "flash_attention_causal_mask": OptionSpec(
        bool, False, "flash attention with a causal mask for the first token"
    ),
    "flash_attention_fast_softmax": OptionSpec(
        bool, None, "flash attention fast softmax (default: on when use_flash_attention is on)"
    ),
    "max_input_tokens": OptionSpec(
        int, None, "pad every prompt to this many tokens (default: the longest prompt of the run)"
    ),
    "attn_implementation": OptionSpec(
        str, "eager", "attention implementation passed to from_pretrained", ("eager", "sdpa")
    ),
    "fp8_calibration_requests": OptionSpec(
        int, 16, "prompts of the prompt set run through the fp8 measurement pass"
    ),
}

#: The run_generation.py flag each option mirrors (None: ours, no such flag).
RUN_GENERATION_FLAGS: dict[str, str | None] = {
    "use_hpu_graphs": "--use_hpu_graphs",
    "limit_hpu_graphs": "--limit_hpu_graphs",
    "clear_hpu_graphs_cache": "--clear_hpu_graphs_cache",
    "use_kv_cache": "--use_kv_cache",
    "reuse_cache": "--reuse_cache",
    "bucket_size": "--bucket_size",
    "bucket_internal": "--bucket_internal",
    "reduce_recompile": "--reduce_recompile",
    "trim_logits": "--trim_logits",
    "attn_softmax_bf16": "--attn_softmax_bf16",
    "use_flash_attention": "--use_flash_attention",
    "flash_attention_recompute": "--flash_attention_recompute",
    "flash_attention_causal_mask": "--flash_attention_causal_mask",
    "flash_attention_fast_softmax": "--flash_attention_fast_softmax",
    "max_input_tokens": "--max_input_tokens",
    "attn_implementation": "--attn_implementation",
    "fp8_calibration_requests": None,
}

#: Every option the habana backend accepts (what the registry reads).
OPTIONS: dict[str, OptionSpec] = {**COMMON_OPTIONS, **HABANA_OPTIONS}


def validate_config(config: RunConfig) -> None:
    """Cross-option checks, run by the backend registry before anything loads."""
    validate_options(config.options, precision=config.precision, world_size=config.world_size)


_FLASH_DEPENDENTS = (
    "flash_attention_recompute",
    "flash_attention_causal_mask",
    "flash_attention_fast_softmax",
)


def option(options: Mapping[str, Any], name: str) -> Any:
    """The value of a habana option, or its declared default."""
    value = options.get(name)
    return HABANA_OPTIONS[name].default if value is None else value


def validate_options(options: Mapping[str, Any], *, precision: str, world_size: int) -> None:
    """Reject combinations optimum-habana would assert on or silently ignore.

    Types and names are checked by the backend registry; this is the layer
    above: options that only mean something together.
    """

    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ConfigError(f"habana option {message}")

    bucket = option(options, "bucket_size")
    need(
        bucket == -1 or bucket >= 1,
        f"'bucket_size' must be -1 (off) or a positive token count, got {bucket}",
    )
    if option(options, "limit_hpu_graphs"):
        need(option(options, "use_hpu_graphs"), "'limit_hpu_graphs' needs use_hpu_graphs")
    if option(options, "bucket_internal"):
        need(option(options, "use_kv_cache"), "'bucket_internal' needs use_kv_cache")
        need(bucket >= 1, "'bucket_internal' needs a bucket_size")
    if option(options, "reuse_cache"):
        need(option(options, "use_kv_cache"), "'reuse_cache' needs use_kv_cache")
        need(
            bucket == -1 or option(options, "bucket_internal"),
            "'reuse_cache' with a bucket_size needs bucket_internal (optimum-habana asserts this)",
        )
    if option(options, "reduce_recompile"):
        need(bucket >= 1, "'reduce_recompile' needs a bucket_size")
    if not option(options, "use_flash_attention"):
        for name in _FLASH_DEPENDENTS:
            need(not options.get(name), f"{name!r} has no effect without use_flash_attention")
    if option(options, "attn_softmax_bf16"):
        need(precision != "fp32", "'attn_softmax_bf16' needs precision bf16 or fp8, not fp32")
    if (n := options.get("max_input_tokens")) is not None:
        need(n >= 1, f"'max_input_tokens' must be >= 1, got {n}")
    n = option(options, "fp8_calibration_requests")
    need(n >= 1, f"'fp8_calibration_requests' must be >= 1, got {n}")
    if world_size > 1 and precision == "fp32":
        raise ConfigError(
            "tensor parallel (world_size > 1) runs in bf16 or fp8 on Gaudi (DeepSpeed inference), not fp32"
        )


@dataclass(frozen=True)
class GaudiSettings:
    """Everything the backend applies for one run, derived from its options."""

    #: attributes set on the ``GaudiGenerationConfig`` passed to generate()
    generation_config: dict[str, Any]
    #: extra keyword arguments of ``model.generate()``
    generate_kwargs: dict[str, Any]
    #: wrap the model with ``habana_frameworks.torch.hpu.wrap_in_hpu_graph``
    wrap_in_hpu_graph: bool
    #: DeepSpeed ``init_inference(enable_cuda_graph=...)`` (its name for HPU graphs)
    deepspeed_graphs: bool
    #: adjustments made to what was asked, for the log
    notes: tuple[str, ...] = field(default=())


def gaudi_settings(
    options: Mapping[str, Any],
    *,
    precision: str,
    ignore_eos: bool,
    lazy_mode: bool,
    model_optimized: bool,
    world_size: int = 1,
) -> GaudiSettings:
    """Options -> exact generate()/model settings, as run_generation.py sets them.

    ``model_optimized``: optimum-habana has a static-shape implementation of
    this model type (``checkpoint_utils.model_is_optimized``). Static shapes
    and buckets only exist for those, exactly as in run_generation.py.
    ``lazy_mode``: the bridge runs in lazy mode (PT_HPU_LAZY_MODE=1); HPU
    graphs need it, so in eager mode they are off.
    """
    validate_options(options, precision=precision, world_size=world_size)
    notes: list[str] = []
    graphs = bool(option(options, "use_hpu_graphs"))
    if graphs and not lazy_mode:
        graphs = False
        notes.append("use_hpu_graphs ignored: HPU graphs need lazy mode (PT_HPU_LAZY_MODE=1)")
    bucket = int(option(options, "bucket_size"))
    if bucket > 0 and not model_optimized:
        notes.append(
            "bucket_size ignored: optimum-habana has no static-shape version of this model"
        )
        bucket = -1
    flash = bool(option(options, "use_flash_attention"))
    fast_softmax = options.get("flash_attention_fast_softmax")
    gen: dict[str, Any] = {
        "use_cache": bool(option(options, "use_kv_cache")),
        "static_shapes": model_optimized,
        "bucket_size": bucket,
        "bucket_internal": bool(option(options, "bucket_internal")),
        "reuse_cache": bool(option(options, "reuse_cache")),
        "reduce_recompile": bool(option(options, "reduce_recompile")),
        "trim_logits": bool(option(options, "trim_logits")),
        "attn_softmax_bf16": bool(option(options, "attn_softmax_bf16")) and precision != "fp32",
        "limit_hpu_graphs": bool(option(options, "limit_hpu_graphs")) and graphs,
        "clear_hpu_graphs_cache": bool(option(options, "clear_hpu_graphs_cache")),
        "use_flash_attention": flash,
        "flash_attention_recompute": bool(option(options, "flash_attention_recompute")),
        "flash_attention_causal_mask": bool(option(options, "flash_attention_causal_mask")),
        "flash_attention_fast_softmax": flash if fast_softmax is None else bool(fast_softmax),
        "ignore_eos": ignore_eos,
        "valid_sequence_lengths": None,
    }
    kwargs = {"lazy_mode": lazy_mode, "hpu_graphs": graphs, "ignore_eos": ignore_eos}
    return GaudiSettings(
        generation_config=gen,
        generate_kwargs=kwargs,
        wrap_in_hpu_graph=graphs and world_size == 1,
        deepspeed_graphs=graphs and world_size > 1,
        notes=tuple(notes),
    )


def fixed_input_length(
    longest_prompt: int, *, max_input_tokens: int | None, max_new_tokens: int, context: int | None
) -> int:
    """The one input length every batch is padded to (static shapes: one graph).

    Prompts are never truncated: a prompt longer than ``max_input_tokens``
    would silently change what is measured, so it is a config error.
    """
    length = longest_prompt
    if max_input_tokens is not None:
        if longest_prompt > max_input_tokens:
            raise ConfigError(
                f"longest prompt has {longest_prompt} tokens, more than max_input_tokens {max_input_tokens}"
            )
        length = max_input_tokens
    if context is not None and length + max_new_tokens > context:
        raise ConfigError(
            f"input length {length} + max_new_tokens {max_new_tokens} exceeds the model's context of {context}"
        )
    return length


def bridge_env_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment the Habana PyTorch bridge reads when it first loads.

    Set before the first ``habana_frameworks`` import (device detection), as
    run_generation.py's setup_env does; values the user already set win.
    Lazy mode is what optimum-habana's text-generation example runs
    (``PT_HPU_LAZY_MODE=1`` in every README command): recent SynapseAI
    releases default to eager mode + torch.compile instead.
    """
    wanted = {"PT_HPU_LAZY_MODE": "1", "EXPERIMENTAL_WEIGHT_SHARING": "FALSE"}
    try:
        world_size = int(environ.get("WORLD_SIZE") or "1")
    except ValueError:
        world_size = 1
    if world_size > 1:
        wanted["PT_HPU_ENABLE_LAZY_COLLECTIVES"] = "true"
    return {k: v for k, v in wanted.items() if k not in environ}


def graph_env_defaults(options: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """run_generation.py's PT_HPUGRAPH_DISABLE_TENSOR_CACHE rule (graphs with
    limit_hpu_graphs and bucket_internal but no reuse_cache may drop inputs)."""
    if (
        option(options, "use_hpu_graphs")
        and option(options, "limit_hpu_graphs")
        and not option(options, "reuse_cache")
        and option(options, "bucket_internal")
        and "PT_HPUGRAPH_DISABLE_TENSOR_CACHE" not in environ
    ):
        return {"PT_HPUGRAPH_DISABLE_TENSOR_CACHE": "1"}
    return {}


def lazy_mode_from_env(environ: Mapping[str, str]) -> bool:
    return environ.get("PT_HPU_LAZY_MODE", "1").strip() != "0"
