"""``bench tiny-model DIR``: the offline model tests and the demo run on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.tinymodel import TinyModelSpec, build_tiny_model, recorded_build


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="build a tiny random Llama + tokenizer offline",
        description="Build a tiny Llama with random weights and a BPE tokenizer trained on a "
        "prompt set; saved with save_pretrained, loadable with AutoModelForCausalLM. A tiny "
        "model already in DIR is reused when it was built with the same options under the "
        "same transformers major version, and rebuilt otherwise.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--prompts",
        default="default",
        help="prompt set to train the tokenizer on (default: default)",
    )
    p.add_argument("--seed", type=int, default=0, help="weight init seed (default 0)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    p.add_argument(
        "--vocab", type=int, default=512, help="tokenizer vocabulary target (default 512)"
    )
    p.add_argument("--force", action="store_true", help="overwrite a non-empty DIR")
    p.set_defaults(func=cmd_tiny_model)


def cmd_tiny_model(args: argparse.Namespace) -> int:
    spec = TinyModelSpec(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 11 // 4,
        num_layers=args.layers,
        seed=args.seed,
        prompts=args.prompts,
    )
    path = build_tiny_model(args.dir, spec, force=args.force)
    built = recorded_build(path) or {}
    print(f"tiny model ready in {path} (transformers {built.get('transformers')})")
    return 0
