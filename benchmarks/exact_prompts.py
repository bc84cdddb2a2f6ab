"""What does a token-exact prompt set cost to build, cold and from the cache?

Builds ``--count`` prompts of exactly ``--tokens`` tokens (default 1,000 x
2,048: the longest published input shape for a whole night's requests) with
the tiny model's tokenizer, in each mode the benchmark child uses (text from
the default set, random tokens; with and without the chat template), once
with an empty cache and once from the cache it wrote, and prints the two
side by side with their ratio and the CPU time (the figure a busy shared
machine distorts least). Also prints the floor: one batched tokenizer pass
over the distinct built texts, the least any exact builder must spend to
verify its counts.

The default set holds 200 prompts, so 1,000 text-mode requests are 200
distinct texts (request i + 200 starts where request i does) and each is
built once. The row "text, N distinct" builds from a set of ``--count``
numbered copies of the default prompts, every request a text of its own:
what a dataset set as long as the night costs.

Targets (issue 10): < 1 s cold (text mode), < 50 ms from the cache.

    python benchmarks/exact_prompts.py [--model DIR] [--count 1000] [--tokens 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.core.prompts import Prompt, PromptSet, load_prompt_set
from bench.core.prompts.exact import PromptTokens, build_exact
from bench.tinymodel import build_tiny_model


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="tokenizer directory (default: the tiny model)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_tiny_model(Path(scratch) / "tiny-llama")
        tokenizer = AutoTokenizer.from_pretrained(str(model))
        source = load_prompt_set("default")
        numbered = PromptSet(
            name=f"default-x{args.count}",
            path=source.path,
            prompts=tuple(
                Prompt(text=f"{k}. {source.prompts[k % len(source)].text}")
                for k in range(args.count)
            ),
        )
        print(f"{args.count} prompts x {args.tokens} tokens, tokenizer {model}, "
              f"median of {args.rounds} rounds (wall / cpu seconds)")  # fmt: skip
        print(f"{'mode':<22}{'distinct':>9}{'cold':>16}{'cached':>16}{'cold/cached':>13}"
              f"{'floor':>16}")  # fmt: skip
        for name, templated, mode in (
            ("text", False, source),
            ("text, chat template", True, source),
            (f"text, {args.count} distinct", False, numbered),
            ("random", False, None),
        ):
            rule = PromptTokens(tokenizer, templated)
            cold, warm, floor = [], [], []
            for r in range(args.rounds):
                cache = Path(scratch) / f"cache-{name}-{r}"

                def build(
                    rule: PromptTokens = rule, mode: PromptSet | None = mode, cache: Path = cache
                ) -> PromptSet:
                    return build_exact(rule, args.tokens, args.count, source=mode, cache_dir=cache)

                cold.append(timed(build))
                warm.append(timed(build))
                texts: list[str] = list(dict.fromkeys(p.text or "" for p in build().prompts))
                floor.append(timed(partial(rule.count, texts)))
            c, w, f = (tuple(statistics.median(x[i] for x in xs) for i in (0, 1)) for xs in (cold, warm, floor))  # fmt: skip
            print(
                f"{name:<22}{len(texts):>9}{c[0]:>8.3f} /{c[1]:>6.3f}{w[0]:>8.3f} /{w[1]:>6.3f}"
                f"{c[0] / w[0]:>12.0f}x{f[0]:>8.3f} /{f[1]:>6.3f}"
            )


if __name__ == "__main__":
    main()
