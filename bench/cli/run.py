"""``bench run``: benchmark one configuration and print its summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.backends import BACKENDS
from bench.backends.habana.launch import is_primary_rank
from bench.core.config import DEVICES, PRECISIONS, RunConfig
from bench.core.results import CampaignRef, RunResult, write_jsonl
from bench.errors import BenchmarkFailed, ConfigError
from bench.orchestration.child import Reporter, reporting
from bench.report.text import ProgressPrinter, format_summary
from bench.runner import run_benchmark

#: CLI flag destination -> RunConfig field, for flags that set config fields.
_CONFIG_FLAGS = (
    "model",
    "model_path",
    "precision",
    "batch_size",
    "max_new_tokens",
    "device",
    "backend",
    "prompts",
    "limit",
    "warmup",
    "seed",
    "world_size",
    "concurrency",
    "request_rate",
    "slo_ttft_ms",
    "slo_tpot_ms",
)

#: CLI flag destination -> openai backend option (``--option KEY=VALUE`` wins).
_OPENAI_FLAGS = {
    "base_url": "base_url",
    "endpoint": "endpoint",
    "api_key_env": "api_key_env",
    "served_model": "served_model",
    "tokenizer": "tokenizer",
    "burstiness": "burstiness",
    "max_concurrency": "max_concurrency",
    "request_timeout": "request_timeout_s",
    "max_duration": "max_duration_s",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="benchmark one configuration",
        description="Benchmark one model x precision x batch-size configuration, timing every token.",
        argument_default=argparse.SUPPRESS,
    )
    what = p.add_argument_group("what to run")
    what.add_argument(
        "--model", help="hub id or local model directory (required unless in --config)"
    )
    what.add_argument(
        "--model-path", help="load weights from here; --model stays the name in results"
    )
    what.add_argument(
        "--precision", choices=PRECISIONS, help="weights/compute dtype (default bf16)"
    )
    what.add_argument(
        "--backend",
        choices=list(BACKENDS),
        help="how requests reach the model (default: habana with --device hpu, else hf)",
    )
    what.add_argument("--device", choices=DEVICES, help="default auto: hpu, else cuda, else cpu")
    what.add_argument("--trust-remote-code", action="store_true", help="passed to transformers")
    what.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option (repeatable); VALUE is JSON (true, 4, 0.7) or a bare string",
    )
    what.add_argument(
        "--config", metavar="JSON|FILE", help="a full config as JSON; flags override it"
    )

    load = p.add_argument_group("load")
    load.add_argument("--batch-size", type=int, help="sequences per generate() call (default 1)")
    load.add_argument("--max-new-tokens", type=int, help="output tokens per request (default 128)")
    load.add_argument(
        "--stop-at-eos",
        action="store_true",
        help="let a sequence end at EOS (default: fixed output length, EOS ignored)",
    )
    load.add_argument(
        "--prompts", help="prompt set name under prompts/ or a .txt/.jsonl path (default: default)"
    )
    load.add_argument(
        "--limit", type=int, help="measured requests (default: the whole set; cycles if larger)"
    )
    load.add_argument(
        "--warmup", type=int, help="unmeasured warmup iterations (batches) first (default 1)"
    )
    load.add_argument("--seed", type=int, help="torch seed for sampling (default 0)")
    load.add_argument(
        "--world-size", type=int, help="cards per config, tensor parallel (habana; default 1)"
    )
    load.add_argument("--concurrency", type=int, help="requests in flight (openai backend)")
    load.add_argument(
        "--request-rate", type=float, help="request arrivals per second (openai backend)"
    )

    api = p.add_argument_group("openai backend (an OpenAI-compatible endpoint)")
    api.add_argument("--base-url", help="API root with version prefix, e.g. http://host:8000/v1")
    api.add_argument(
        "--endpoint", choices=("completions", "chat"), help="API to call (default completions)"
    )
    api.add_argument(
        "--api-key-env", metavar="VAR", help="env var holding the API key (default OPENAI_API_KEY)"
    )
    api.add_argument("--served-model", help="model name sent to the server (default: --model)")
    api.add_argument(
        "--tokenizer", help="counts tokens when the server sends no usage (default: --model)"
    )
    api.add_argument(
        "--burstiness",
        type=float,
        help="with --request-rate: gamma shape of gaps (default 1 = Poisson)",
    )
    api.add_argument(
        "--max-concurrency", type=int, help="with --request-rate: most requests in flight"
    )
    api.add_argument(
        "--request-timeout",
        type=float,
        metavar="S",
        help="fail a request after S seconds (default 600)",
    )
    api.add_argument(
        "--max-duration", type=float, metavar="S", help="stop issuing requests after S seconds"
    )

    slo = p.add_argument_group("service-level objectives (goodput)")
    slo.add_argument("--slo-ttft-ms", type=float, help="a good request's TTFT is at most this")
    slo.add_argument("--slo-tpot-ms", type=float, help="a good request's TPOT is at most this")

    out = p.add_argument_group("results")
    out.add_argument("--output", type=Path, metavar="FILE.jsonl", help="also write the result here")
    out.add_argument(
        "--format",
        choices=("jsonl", "vllm"),
        help="--output format (default jsonl; vllm: vLLM bench serve JSON)",
    )
    out.add_argument(
        "--no-db", action="store_true", help="do not spool or load into the results DB"
    )
    out.add_argument("--campaign-run-id", help="attach to this campaign (Airflow dag_run_id)")
    out.add_argument("--dag-id", help="the campaign's DAG id")
    out.add_argument("--trigger", help="how the campaign was started (scheduled, manual, cli)")
    out.add_argument(
        "--outcome",
        type=Path,
        metavar="FILE.json",
        help="keep the run's phase, plan and status here (what the Airflow task reads)",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_run)


def parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def config_from_args(args: argparse.Namespace) -> RunConfig:
    data: dict[str, Any] = {}
    if raw := getattr(args, "config", None):
        path = Path(raw)
        try:
            text = path.read_text() if not raw.lstrip().startswith("{") and path.is_file() else raw
            data = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"--config is neither a JSON object nor a readable JSON file: {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("--config must hold a JSON object")
    for name in _CONFIG_FLAGS:
        if hasattr(args, name):
            data[name] = getattr(args, name)
    if data.get("device") == "hpu" and "backend" not in data:
        data["backend"] = "habana"  # the in-process backend of Gaudi
    if getattr(args, "stop_at_eos", False):
        data["ignore_eos"] = False
    if getattr(args, "trust_remote_code", False):
        data["trust_remote_code"] = True
    options = dict(data.get("options") or {})
    for flag, key in _OPENAI_FLAGS.items():
        if hasattr(args, flag):
            options[key] = getattr(args, flag)
    for text in getattr(args, "option", None) or []:
        key, value = parse_option(text)
        options[key] = value
    data["options"] = options
    if not data.get("model"):
        raise ConfigError("--model is required")
    return RunConfig.from_mapping(data)


def _check_output_path(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"--output {path} is a directory")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"--output {path}: {path.parent} is not a directory")


def cmd_run(args: argparse.Namespace) -> int:
    primary = is_primary_rank()  # tensor-parallel peers run in lockstep; rank 0 alone reports
    with reporting(getattr(args, "outcome", None) if primary else None) as report:
        return _run(args, report, primary=primary)


def _run(args: argparse.Namespace, report: Reporter, *, primary: bool) -> int:
    config = config_from_args(args)
    report.configured(config.label)
    output: Path | None = getattr(args, "output", None)
    if output is not None:
        _check_output_path(output)
    elif hasattr(args, "format"):
        raise ConfigError("--format applies to --output; give --output FILE too")
    campaign = None
    if run_id := getattr(args, "campaign_run_id", None):
        campaign = CampaignRef(
            dag_run_id=run_id,
            dag_id=getattr(args, "dag_id", None),
            trigger=getattr(args, "trigger", "manual"),
        )
    quiet = getattr(args, "quiet", False) or not primary
    result = run_benchmark(
        config,
        campaign=campaign,
        progress=None if quiet else ProgressPrinter,
        observer=report,
    )
    if not primary:
        return 0 if result.ok else 1
    report.phase("store")
    if output is not None:
        if getattr(args, "format", "jsonl") == "vllm":
            from bench.backends.openai.export_vllm import write_vllm_json

            write_vllm_json(result, output)
        else:
            write_jsonl(result, output)
    print(format_summary(result))
    if output is not None:
        print(f"result written to {output}")
    stored = not getattr(args, "no_db", False)
    if stored:
        store_result(result)
    report.finished(result, result_path=output, recorded=stored)
    if not result.ok:
        raise BenchmarkFailed(f"run {result.status}: {result.error}")
    return 0


def store_result(result: RunResult) -> None:
    """Spool the result, then load the spool into the results DB (stays
    spooled, with a message, when the DB is unreachable)."""
    from bench.store.spool import spool_and_load

    outcome = spool_and_load(result)
    print(outcome.message, file=sys.stderr)
