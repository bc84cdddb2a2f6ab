"""CUDA validation: real per-token numbers for a Llama-2-7B-shaped model.

Random weights in bf16 (no download), built directly on the GPU. For batch
1 and 8, 128 prompt tokens -> 128 output tokens (EOS ignored): TTFT, TPOT,
output tokens/s and NVML energy per token measured with our TimingStreamer,
and the overhead ratio of streamed vs bare generate(), interleaved. Then
the full `bench run --device cuda` path on the tiny model, as a user runs it.

    python benchmarks/cuda_check.py                  # on an NVIDIA GPU
    python benchmarks/cuda_check.py --shape tiny --device cpu   # smoke-test the script

Prints a table and writes JSON to --out when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.core.metrics import request_result, summarize
from bench.core.records import RequestRecord
from bench.core.streamer import TimingStreamer

SHAPES = {
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


def build(shape: str, device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    return model


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(
    model: Any, device: str, batch: int, n_in: int, n_out: int, rounds: int
) -> dict[str, Any]:
    vocab = model.config.vocab_size
    gen = {"max_new_tokens": n_out, "min_new_tokens": n_out, "do_sample": False, "pad_token_id": 0}
    ids = torch.randint(3, vocab, (batch, n_in), device=device)
    mask = torch.ones_like(ids)
    sampler = None
    if device == "cuda":
        from bench.power.nvml import nvml_sampler

        sampler = nvml_sampler(torch.cuda.current_device())
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=mask, **gen)  # warmup: kernels, allocator
        bare, streamed, results, energy = [], [], [], []
        for _ in range(rounds):
            sync(device)
            t0 = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, **gen)
            sync(device)
            bare.append(time.perf_counter() - t0)
            streamer = TimingStreamer()
            if sampler is not None:
                sampler.start()
            t_send = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, **gen, streamer=streamer)
            sync(device)
            streamed.append(time.perf_counter() - t_send)
            if sampler is not None:
                energy.append(sampler.stop())
            for b, seq in enumerate(streamer.sequences(batch)):
                results.append(
                    request_result(
                        RequestRecord(b, "r", n_in, seq.output_tokens, t_send, seq.token_times)
                    )
                )
    duration = statistics.median(streamed) * rounds
    metrics = summarize(results, duration_s=duration)
    joules = [e for e in energy if e is not None]
    return {
        "batch": batch,
        "ttft_p50_ms": metrics.ttft_p50_ms,
        "tpot_p50_ms": metrics.tpot_p50_ms,
        "itl_p99_ms": metrics.itl_p99_ms,
        "output_tokens_per_s": batch * n_out / statistics.median(streamed),
        "energy_j_per_token": statistics.median(joules) / (batch * n_out) if joules else None,
        "streamed_vs_bare": statistics.median(streamed) / statistics.median(bare),
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
    }


def cli_path(device: str) -> dict[str, Any]:
    """`bench tiny-model` + `bench run --device <device>` exactly as a user runs them."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, out = Path(tmp) / "tiny", Path(tmp) / "out.jsonl"
        subprocess.run([sys.executable, "-m", "bench", "tiny-model", str(model_dir)], check=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                "run",
                "--model",
                str(model_dir),
                "--device",
                device,
                "--batch-size",
                "4",
                "--max-new-tokens",
                "32",
                "--limit",
                "16",
                "--no-db",
                "--output",
                str(out),
                "-q",
            ],
            capture_output=True,
            text=True,
        )
        print(proc.stdout)
        if proc.returncode != 0:
            return {"ok": False, "error": proc.stderr.strip()[-2000:]}
        summary = json.loads(out.read_text().splitlines()[-1])
        return {"ok": True, "environment": summary["environment"], "metrics": summary["metrics"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=list(SHAPES), default="llama2-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device visible (torch.cuda.is_available() is False)")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    t0 = time.perf_counter()
    model = build(args.shape, args.device, dtype)
    print(f"built {args.shape} on {args.device} in {time.perf_counter() - t0:.1f} s")
    import transformers

    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report: dict[str, Any] = {
        "device": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "shape": args.shape,
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "rows": [],
    }
    print(f"{name}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(
        f"{'batch':>5}{'TTFT p50 ms':>13}{'TPOT p50 ms':>13}{'ITL p99 ms':>12}{'tok/s':>10}{'J/tok':>8}{'vs bare':>9}"
    )
    for batch in args.batches:
        row = measure(model, args.device, batch, args.input_tokens, args.output_tokens, args.rounds)
        report["rows"].append(row)
        jpt = f"{row['energy_j_per_token']:.3f}" if row["energy_j_per_token"] is not None else "-"
        print(
            f"{batch:>5}{row['ttft_p50_ms']:>13.2f}{row['tpot_p50_ms']:>13.2f}{row['itl_p99_ms']:>12.2f}"
            f"{row['output_tokens_per_s']:>10.0f}{jpt:>8}{row['streamed_vs_bare']:>8.3f}x"
        )
    del model
    report["cli"] = cli_path(args.device)
    print("bench run path:", "ok" if report["cli"]["ok"] else report["cli"]["error"])
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
