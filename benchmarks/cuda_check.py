"""CUDA check: what each timing mode costs, and the `bench run` path, on a real GPU.

1. A Llama-2-7B-shaped model with random weights, built in bf16 directly on
   the GPU (no download). For each batch size (default 1, 8, 64), 128 prompt
   tokens -> 128 output tokens (EOS ignored): bare generate(), our streamer,
   device events and dual (bare + streamed pass), interleaved round by round
   (bench/timingcheck.py). Prints medians, ratios to bare, TTFT/TPOT/ITL and
   events-vs-stream clock agreement.
2. `bench tiny-model` and `bench run --device cuda --timing {stream,events,dual}`
   on the tiny model, exactly as a user runs them (--no-db: no database needed).

Runtime is bounded: after the model is built, each batch size gets an equal
share of --budget-s (minus a reserve for step 2) and runs as many rounds as
fit (at most --rounds). JSON goes to --out after every step, so a run cut
short still leaves its numbers. Needs only torch and transformers.

    PYTHONPATH=. python benchmarks/cuda_check.py --out cuda_check.json
    PYTHONPATH=. python benchmarks/cuda_check.py --quick --out q.json    # ~2-3 min
    PYTHONPATH=. python benchmarks/cuda_check.py --shape tiny --device cpu   # smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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

SHAPES: dict[str, dict[str, int]] = {
    "llama2-7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=2048,
    ),
}
#: seconds kept for step 2 (three `bench run` processes plus the tiny model)
CLI_RESERVE_S = 100.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=list(SHAPES), default="llama2-7b")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="most rounds per batch (default 3)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="wall-time budget of the whole script, model build included (default 420)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round per batch and a 240 s budget"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--skip-cli", action="store_true", help="skip step 2 (bench run)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.budget_s = 1, min(args.budget_s, 240.0)
    return args


def build(shape: str, device: str, dtype: torch.dtype) -> Any:
    """Random weights in ``dtype``, created on ``device`` (no fp32 copy first)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    return model.to(dtype).eval()


def cuda_device(name: str) -> Device:
    if name == "cuda":
        return Device("cuda", torch.cuda.synchronize, lambda: torch.cuda.Event(enable_timing=True))
    return Device("cpu", lambda: None)  # no events: that variant reports its error


def generator(model: Any, batch: int, n_in: int, n_out: int, device: str) -> Callable[..., Any]:
    from transformers import GenerationConfig

    gen = GenerationConfig(
        max_new_tokens=n_out,
        min_new_tokens=n_out,
        do_sample=False,
        num_beams=1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    ids = torch.randint(3, model.config.vocab_size, (batch, n_in), device=device)
    mask = torch.ones_like(ids)

    def generate(**kwargs: Any) -> Any:
        with torch.inference_mode():  # as the hf backend runs it
            return model.generate(
                input_ids=ids, attention_mask=mask, generation_config=gen, **kwargs
            )

    return generate


def cli_path(device: str, log: Progress, timeout_s: float = 150.0) -> dict[str, Any]:
    """`bench tiny-model` + `bench run --device <device> --timing T`, as a user runs them."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        built = subprocess.run(
            [sys.executable, "-m", "bench", "tiny-model", str(model_dir)],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout_s,
        )  # fmt: skip
        if built.returncode != 0:
            return {"tiny-model": {"ok": False, "error": built.stderr.strip()[-2000:]}}

        def argv(timing: str, out: Path) -> list[str]:
            return [
                "--model", str(model_dir), "--device", device, "--timing", timing,
                "--batch-size", "4", "--max-new-tokens", "16", "--limit", "8", "--warmup", "1",
                "--no-db", "--output", str(out), "-q",
            ]  # fmt: skip

        timings = ("stream", "events", "dual") if device == "cuda" else ("stream", "dual")
        return bench_run_modes(argv, timings, log, cwd=REPO, env=env, timeout_s=timeout_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Progress()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda_check: no CUDA device visible (torch.cuda.is_available() is False)")
        return 2
    import transformers

    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    report: dict[str, Any] = {
        "device": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "shape": args.shape,
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "budget_s": args.budget_s,
    }
    check = CheckReport(report, args.out, log)
    log(
        f"{name}, python {report['python']}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}; {args.shape}, batches {args.batches}, "
        f"{args.input_tokens}->{args.output_tokens} tokens, variants {args.variants}, "
        f"at most {args.rounds} round(s), budget {args.budget_s:.0f} s"
    )
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = check.step("build", lambda: build(args.shape, args.device, dtype))
    if model is not None:
        log(f"built {args.shape} ({dtype}) on {args.device} in {report['build_s']} s")
    device = cuda_device(args.device)
    if device.new_event is None and "events" in args.variants:
        args.variants = [v for v in args.variants if v != "events"]
        log(f"events: skipped ({args.device} has no timing events)")
    on_gpu = args.device == "cuda"

    def measure(batch: int, share: float) -> dict[str, Any]:
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        generate = generator(model, batch, args.input_tokens, args.output_tokens, args.device)
        row = compare_batch(
            generate, device, batch=batch, new_tokens=args.output_tokens,
            variants=args.variants, budget_s=share, max_rounds=args.rounds, log=log,
        )  # fmt: skip
        if on_gpu:
            row["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        return row

    if model is not None:
        check.sweep(
            args.batches, measure, budget_s=args.budget_s,
            reserve_s=0.0 if args.skip_cli else CLI_RESERVE_S,
            after_failure=torch.cuda.empty_cache if on_gpu else None,
        )  # fmt: skip
    model = None  # the GPU memory back before step 2
    if on_gpu:
        torch.cuda.empty_cache()
    if not args.skip_cli:
        log("bench run path (tiny model)")
        report["cli"] = check.step("cli", lambda: cli_path(args.device, log))
    return check.done()


if __name__ == "__main__":
    sys.exit(main())
