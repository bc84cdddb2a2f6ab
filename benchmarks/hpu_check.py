"""Gaudi check: the first hour on a Gaudi card, prepared in one script.

What it answers: how much does timing every token cost on HPU? With
ignore_eos, optimum-habana's decode loop has no per-step host sync, so the
host queues step n+1 while the card runs step n; our streamer's .cpu() per
step takes that overlap away. This script measures it on a Llama-2-7B-shaped
model with random weights (no download, no token), in bf16, HPU graphs on,
static shapes, lazy mode, the generate() settings the habana backend uses
(bench.backends.habana.options.gaudi_settings), for batch 1, 8 and 64,
128 prompt tokens -> 128 output tokens. Interleaved round by round:

  bare    generate() alone, one sync at the end (run_generation.py's timing)
  stream  with our TimingStreamer            (timing: stream)
  events  a habana_frameworks.torch.hpu.Event per step, mark_step before it
                                             (timing: events)
  dual    bare pass, then a streamed pass    (timing: dual, the HPU default)

It prints, per batch size, medians, each variant's ratio to bare, TTFT/TPOT/
ITL and how far event times are from streamer times, then a verdict: the
default stays `dual` unless stream is within 2% of bare at every batch size.

First-card procedure (docs/gaudi.md, "First hour on a Gaudi card"):

  1. Build and enter the Gaudi image on the node:
       docker build -t llm-bench-hpu .
       docker run -it --runtime=habana -e HABANA_VISIBLE_DEVICES=all \\
           -e HABANA_VISIBLE_MODULES=0 --cap-add=sys_nice --ipc=host \\
           -v $PWD:/out llm-bench-hpu bash
  2. Check the card:
       python -c "import habana_frameworks.torch.hpu as h; print(h.device_count(), h.get_device_name())"
  3. Run this script (about 10-15 minutes; graph compilation is the first minutes):
       PYTHONPATH=/opt/bench python /opt/bench/benchmarks/hpu_check.py --out /out/hpu_check.json
     --quick: one round per batch size (about 6 minutes); --bench-run-model DIR
     also runs `bench run --device hpu --timing {stream,events,dual}` on a
     staged model directory (docs/gaudi.md, "Weights").
  4. Copy the printed table and the verdict into docs/gaudi.md, section
     "Measured on hardware", with the date, card (Gaudi 2/3), Gaudi software
     and optimum-habana versions (all in the JSON), and attach the JSON.
  5. If stream is within 2% of bare at every batch size, set the HPU
     default to stream (bench.core.config.default_timing) and say so there.

Needs the Gaudi image (habana_frameworks, optimum-habana); run anywhere else,
it stops with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere: the script belongs to this checkout

from bench.timingcheck import (  # noqa: E402
    VARIANTS,
    CheckReport,
    Device,
    Progress,
    bench_run_modes,
    compare_batch,
)

LLAMA2_7B: dict[str, int] = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32000,
    max_position_embeddings=4096,
)
#: stream within this of bare at every batch size: the HPU default may become stream
STREAM_FREE_WITHIN = 0.02
CLI_RESERVE_S = 240.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hpu_check.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="most rounds per batch (default 3)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=900.0,
        help="wall-time budget, model build and compilation included (default 900)",
    )
    parser.add_argument("--quick", action="store_true", help="one round per batch, 420 s budget")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--layers", type=int, help="decoder layers (default 32, Llama-2-7B; fewer for a quick try)"
    )
    parser.add_argument(
        "--bench-run-model",
        metavar="DIR",
        help="also `bench run --device hpu` each timing mode on this staged model",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.budget_s = 1, min(args.budget_s, 420.0)
    for name in ("input_tokens", "output_tokens", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(b < 1 for b in args.batches):
        parser.error("--batches must be >= 1")
    return args


def stream_verdict(rows: Sequence[Mapping[str, Any]]) -> str:
    """Whether the streamer is free enough on this card to drop dual."""
    ratios = [r["variants"].get("stream", {}).get("vs_bare") for r in rows]
    if not rows or any(x is None for x in ratios):
        return "no verdict: stream or bare did not complete at every batch size"
    worst = max(ratios)
    batches = ", ".join(f"bs{r['batch']} {x:.3f}x" for r, x in zip(rows, ratios, strict=True))
    if worst <= 1 + STREAM_FREE_WITHIN:
        return f"stream within {STREAM_FREE_WITHIN:.0%} of bare ({batches}): stream can be the HPU default"
    return f"stream costs up to {worst - 1:.1%} over bare ({batches}): keep dual as the HPU default"


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in ("torch", "habana-torch-plugin", "optimum-habana", "transformers"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def setup_habana() -> tuple[Device, str]:
    """Bridge env defaults first (before any habana import), then the card."""
    from bench.backends.habana.options import bridge_env_defaults

    os.environ.update(bridge_env_defaults(os.environ))
    import habana_frameworks.torch.core as htcore
    import habana_frameworks.torch.hpu as hthpu

    if not hthpu.is_available():
        raise SystemExit("hpu_check: habana_frameworks imports but no Gaudi card is visible")
    lazy = os.environ.get("PT_HPU_LAZY_MODE", "1") != "0"
    device = Device(
        "hpu",
        hthpu.synchronize,
        lambda: hthpu.Event(enable_timing=True),
        htcore.mark_step if lazy else None,
    )
    return device, str(hthpu.get_device_name())


def build_model(layers: int | None) -> Any:
    """Llama-2-7B shape, random bf16 weights on the CPU, then on the card in an
    HPU graph, as the habana backend sets a model up."""
    import torch
    from optimum.habana.transformers.modeling_utils import adapt_transformers_to_gaudi
    from transformers import LlamaConfig, LlamaForCausalLM

    adapt_transformers_to_gaudi()
    shape = {**LLAMA2_7B, **({"num_hidden_layers": layers} if layers else {})}
    config = LlamaConfig(
        **shape, bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="eager"
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    from habana_frameworks.torch.hpu import wrap_in_hpu_graph

    return wrap_in_hpu_graph(model.eval().to("hpu"))


def generator(model: Any, batch: int, n_in: int, n_out: int) -> Callable[..., Any]:
    """generate() with the habana backend's settings for these options."""
    import torch
    from optimum.habana.transformers.generation import GaudiGenerationConfig

    from bench.backends.habana.options import gaudi_settings

    settings = gaudi_settings(
        {}, precision="bf16", ignore_eos=True, lazy_mode=True, model_optimized=True
    )
    gen = GaudiGenerationConfig(
        max_new_tokens=n_out, do_sample=False, num_beams=1, pad_token_id=0, bos_token_id=1,
        eos_token_id=2,
    )  # fmt: skip
    for key, value in settings.generation_config.items():
        setattr(gen, key, value)
    ids = torch.randint(3, model.config.vocab_size, (batch, n_in)).to("hpu")
    mask = torch.ones_like(ids)

    def generate(**kwargs: Any) -> Any:
        with torch.no_grad():
            return model.generate(
                input_ids=ids, attention_mask=mask, generation_config=gen,
                **settings.generate_kwargs, **kwargs,
            )  # fmt: skip

    return generate


def bench_run_path(model_dir: str, log: Progress, timeout_s: float = 600.0) -> dict[str, Any]:
    """`bench run --device hpu --timing T` on a staged model, as a user runs it."""

    def argv(timing: str, out: Path) -> list[str]:
        return [
            "--model", model_dir, "--device", "hpu", "--timing", timing, "--precision", "bf16",
            "--batch-size", "8", "--max-new-tokens", "128", "--limit", "32", "--warmup", "3",
            "--no-db", "--output", str(out), "-q",
        ]  # fmt: skip

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return bench_run_modes(
        argv, ("stream", "events", "dual"), log, cwd=REPO, env=env, timeout_s=timeout_s
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("habana_frameworks") is None:
        print(
            "hpu_check: habana_frameworks is not installed: run it inside the Gaudi image "
            "(see --help and docs/gaudi.md)",
            file=sys.stderr,
        )
        return 2
    log = Progress()
    device, name = setup_habana()
    report: dict[str, Any] = {
        "device": name,
        "python": platform.python_version(),
        "versions": _versions(),
        "bridge_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("PT_HPU")},
        "visible_modules": os.environ.get("HABANA_VISIBLE_MODULES"),
        "shape": "llama2-7b" + (f" ({args.layers} layers)" if args.layers else ""),
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "budget_s": args.budget_s,
    }
    check = CheckReport(report, args.out, log)
    log(f"{name}; {report['versions']}; batches {args.batches}; budget {args.budget_s:.0f} s")
    model = check.step("build", lambda: build_model(args.layers))
    if model is None:
        return 1
    log(f"built the model on the card in {report['build_s']} s")

    def measure(batch: int, share: float) -> dict[str, Any]:
        generate = generator(model, batch, args.input_tokens, args.output_tokens)
        t0 = time.perf_counter()
        for _ in range(2):  # graph compilation and HPU-graph capture for this shape
            generate().cpu()
        log(f"batch {batch}: compiled in {time.perf_counter() - t0:.1f} s")
        return compare_batch(
            generate, device, batch=batch, new_tokens=args.output_tokens,
            variants=args.variants, budget_s=share, max_rounds=args.rounds, log=log,
        )  # fmt: skip

    check.sweep(
        args.batches, measure, budget_s=args.budget_s,
        reserve_s=CLI_RESERVE_S if args.bench_run_model else 0.0,
    )  # fmt: skip
    report["verdict"] = stream_verdict(report["rows"])
    log(report["verdict"])
    model = None  # the card's memory back before bench run
    if args.bench_run_model:
        report["bench_run"] = check.step(
            "bench run", lambda: bench_run_path(args.bench_run_model, log)
        )
    return check.done()


if __name__ == "__main__":
    sys.exit(main())
