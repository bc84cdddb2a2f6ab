"""What does timing every token cost? Bare generate() vs our streamer vs HF's,
and what each timing mode (stream, dual, events) costs.

In one process, on the same prompts, encodings and generation config, the
variants run interleaved (A B C A B C ...) so machine drift hits them
equally; the medians and their ratios to bare generate() are printed.
``timing: dual`` runs a bare pass and a streamed pass of each request: its
wall time is about twice bare's by design, and what must stay at 1.00x is
each of its passes against the variant it reproduces. ``timing: events``
needs device events (CUDA, Gaudi): on CPU it is reported as not available
(benchmarks/cuda_check.py and hpu_check.py measure it on hardware).
"ours + outputs kept" adds what ``bench run`` does with the generated ids
after the timed window (README "Outputs"): copy them to the host as a tuple
and hash them (``output_digest``), as the in-process backend and
``request_result`` do.

    python benchmarks/harness_overhead.py [--rounds 7] [--max-new-tokens 64]

Target: ours <= 1.01x bare on the tiny model on CPU, outputs kept or not;
dual's passes <= 1.01x.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from bench.core.config import RunConfig
from bench.core.prompts import load_prompt_set
from bench.core.records import output_digest
from bench.core.streamer import TimingStreamer
from bench.tinymodel import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model dir (default: build the tiny model in a temp dir)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per round (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--batch-size", type=int, default=1, help="our streamer vs bare at this batch too"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    model_dir = (
        Path(args.model) if args.model else build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    )
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    n = args.max_new_tokens
    gen_kwargs: dict[str, Any] = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False}
    texts = [
        p.as_text() for p in load_prompt_set(RunConfig(model="x").prompts).prompts[: args.prompts]
    ]
    singles = [tok([t], return_tensors="pt") for t in texts]

    def bare() -> None:
        for enc in singles:
            model.generate(**enc, **gen_kwargs)

    def ours() -> None:
        for enc in singles:
            streamer = TimingStreamer()
            model.generate(**enc, **gen_kwargs, streamer=streamer)
            streamer.sequences(1)

    def ours_kept() -> None:
        for enc in singles:
            streamer = TimingStreamer()
            out = model.generate(**enc, **gen_kwargs, streamer=streamer)
            streamer.sequences(1)
            # after the window: the ids on the host, and their digest
            ids = tuple(out[0, enc["input_ids"].shape[1] :].tolist())
            output_digest(ids)

    dual_parts: list[tuple[float, float]] = []

    def dual() -> None:
        """As the backend runs timing: dual (bare pass, then streamed pass)."""
        bare_s = streamed_s = 0.0
        for enc in singles:
            t0 = time.perf_counter()
            model.generate(**enc, **gen_kwargs)
            t1 = time.perf_counter()
            streamer = TimingStreamer()
            model.generate(**enc, **gen_kwargs, streamer=streamer)
            streamer.sequences(1)
            bare_s, streamed_s = bare_s + t1 - t0, streamed_s + time.perf_counter() - t1
        dual_parts.append((bare_s, streamed_s))

    def hf_text_iterator() -> None:
        for enc in singles:
            streamer = TextIteratorStreamer(tok, skip_prompt=True)
            consumer = threading.Thread(target=lambda s=streamer: [None for _ in s])
            consumer.start()
            model.generate(**enc, **gen_kwargs, streamer=streamer)
            consumer.join()

    variants = {
        "bare generate()": bare,
        "TimingStreamer (ours)": ours,
        "ours + outputs kept": ours_kept,
        "TextIteratorStreamer": hf_text_iterator,
        "dual (bare + streamed)": dual,
    }
    if args.batch_size > 1:
        batches = [
            tok(texts[i : i + args.batch_size], return_tensors="pt", padding=True)
            for i in range(0, len(texts), args.batch_size)
        ]

        def bare_b() -> None:
            for enc in batches:
                model.generate(**enc, **gen_kwargs)

        def ours_b() -> None:
            for enc in batches:
                s = TimingStreamer()
                model.generate(**enc, **gen_kwargs, streamer=s)
                s.sequences(enc["input_ids"].shape[0])

        variants |= {
            f"bare generate() B={args.batch_size}": bare_b,
            f"TimingStreamer B={args.batch_size}": ours_b,
        }

    with torch.inference_mode():
        for fn in variants.values():  # warm every code path once
            fn()
        dual_parts.clear()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

    tokens = args.prompts * n
    print(f"tiny model, CPU, {args.prompts} prompts x {n} tokens, {args.rounds} interleaved rounds")
    print(
        f"{'variant':<28}{'median s':>10}{'min s':>9}{'tok/s':>8}{'vs bare (paired median)':>25}{'(min/min)':>11}"
    )
    for name, ts in times.items():
        ref_name = "bare generate()" if "B=" not in name else f"bare generate() B={args.batch_size}"
        ref = times[ref_name]
        paired = statistics.median(t / r for t, r in zip(ts, ref, strict=True))
        med = statistics.median(ts)
        print(
            f"{name:<28}{med:>10.3f}{min(ts):>9.3f}{tokens / med:>8.0f}{paired:>24.3f}x{min(ts) / min(ref):>10.3f}x"
        )
    bare_t, ours_t = times["bare generate()"], times["TimingStreamer (ours)"]
    print(
        "dual's bare pass vs bare generate(): "
        f"{statistics.median(b / r for (b, _), r in zip(dual_parts, bare_t, strict=True)):.3f}x; "
        "its streamed pass vs TimingStreamer: "
        f"{statistics.median(s / r for (_, s), r in zip(dual_parts, ours_t, strict=True)):.3f}x "
        "(paired medians)"
    )
    print("events: not available on CPU (no device timing events); see cuda_check/hpu_check")
    put_ns = hot_path_ns()
    step_ms = statistics.median(times["bare generate()"]) / tokens * 1e3
    print(
        f"TimingStreamer.put(): {put_ns:.0f} ns per decode step (clock + two appends), "
        f"{put_ns / (step_ms * 1e6) * 100:.3f}% of this model's {step_ms:.2f} ms step"
    )
    request_s = min(times["bare generate()"]) / args.prompts
    for length in (n, 2048):
        keep_us = keep_cost_us(length)
        print(
            f"outputs kept, {length} tokens: {keep_us:.1f} us per request after the window "
            f"(ids to the host + sha256), {keep_us / (request_s * 1e6) * 100:.3f}% of a "
            f"{n}-token request's fastest bare generate() ({request_s * 1e3:.1f} ms)"
        )


def keep_cost_us(tokens: int, prompt: int = 32, reps: int = 2000) -> float:
    """What keeping a request's outputs adds after the window, alone (best of 5):
    its generated ids out of generate()'s result as a tuple, and their digest.
    Timed apart from generate() so a busy machine cannot hide or inflate it."""
    out = torch.randint(0, 128_256, (1, prompt + tokens))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            output_digest(tuple(out[0, prompt:].tolist()))
        best = min(best, (time.perf_counter_ns() - t0) / reps / 1e3)
    return best


def hot_path_ns(steps: int = 200_000) -> float:
    """The streamer's own per-step cost, timed without generate() around it."""
    token = torch.tensor([7])
    best = float("inf")
    for _ in range(5):
        streamer = TimingStreamer()
        streamer.put(token)  # the prompt push
        t0 = time.perf_counter_ns()
        for _ in range(steps):
            streamer.put(token)
        best = min(best, (time.perf_counter_ns() - t0) / steps)
    return best


if __name__ == "__main__":
    main()
