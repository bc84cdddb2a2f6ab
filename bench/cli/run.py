"""``bench run``: benchmark one configuration and print its summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from bench.backends.habana.launch import is_primary_rank
from bench.backends.openai.endpoints import AUTO, ENDPOINTS
from bench.core.config import FIELDS, MODEL, RunConfig
from bench.core.fields import Declared
from bench.core.results import CampaignRef, RunResult, write_jsonl
from bench.errors import BenchmarkFailed, ConfigError
from bench.orchestration.child import Reporter, reporting
from bench.report.text import ProgressPrinter, format_summary
from bench.runner import run_benchmark

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
    groups: dict[str, Any] = {}
    for field in FIELDS:
        if field.flag is None:
            continue
        if field.setting.section not in groups:
            title = field.setting.section
            groups[title] = p.add_argument_group(title[0].lower() + title[1:])
        _add_flag(groups[field.setting.section], field)
    groups[MODEL].add_argument(
        "--config", metavar="JSON|FILE", help="a full config as JSON; flags override it"
    )

    api = p.add_argument_group("openai backend (an OpenAI-compatible endpoint)")
    api.add_argument("--base-url", help="API root with version prefix, e.g. http://host:8000/v1")
    api.add_argument(
        "--endpoint",
        choices=(AUTO, *ENDPOINTS),
        help="API to call (default auto: completions if the server streams it, else chat)",
    )
    api.add_argument(
        "--api-key-env", metavar="VAR", help="env var holding the API key (default OPENAI_API_KEY)"
    )
    api.add_argument("--served-model", help="model name sent to the server (default: --model)")
    api.add_argument(
        "--tokenizer",
        help="exact prompt token counts; output counts without server usage (default: --model)",
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
        "--confirm",
        action="store_true",
        help="a same-night re-run confirming the campaign's run of this configuration: stored "
        "beside it, judged together with it, never a night of its own (needs --campaign-run-id)",
    )
    out.add_argument(
        "--attempt",
        type=int,
        default=1,
        metavar="N",
        help="which try of its Airflow task this run is: stored with the run, shown in the "
        "campaign table as tries (default 1)",
    )
    out.add_argument(
        "--outcome",
        type=Path,
        metavar="FILE.json",
        help="keep the run's phase, plan and status here (what the Airflow task reads)",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_run)


def _add_flag(group: Any, field: Declared) -> None:
    """One ``bench run`` flag from a field's declaration: type, choices,
    and a help text that ends with the default (and the unit)."""
    meta, value = field.setting, field.setting.value
    if value.type is bool:
        action = "store_false" if meta.inverted else "store_true"
        group.add_argument(
            field.flag, dest=field.name, action=action, help=f"{meta.help} (default: off)"
        )
        return
    if value.type is dict:
        group.add_argument(
            field.flag, dest=field.name, action="append", metavar="KEY=VALUE",
            help=f"{meta.help}; repeatable",
        )  # fmt: skip
        return
    group.add_argument(
        field.flag,
        dest=field.name,
        type=value.type,
        choices=value.options(),
        metavar=_METAVARS.get(value.type) if value.options() is None else None,
        help=f"{meta.help} ({_default_text(field)})",
    )


_METAVARS = {int: "N", float: "X"}


def _default_text(field: Declared) -> str:
    """``default 128; 1 to 32768 tokens``: the default, then the bounds."""
    meta = field.setting
    if field.default is dataclasses.MISSING:
        return "required unless in --config"
    default = f"default: {meta.unset}" if field.default is None else f"default {field.default}"
    bounds = meta.value.bounds(meta.unit)
    return default + (f"; {bounds}" if bounds else "")


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
    for field in FIELDS:
        if hasattr(args, field.name) and field.setting.value.type is not dict:
            data[field.name] = getattr(args, field.name)
    if data.get("device") == "hpu" and "backend" not in data:
        data["backend"] = "habana"  # the in-process backend of Gaudi
    options = dict(data.get("options") or {})
    for flag, key in _OPENAI_FLAGS.items():
        if hasattr(args, flag):
            options[key] = getattr(args, flag)
    for text in getattr(args, "options", None) or []:
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
    role = "confirm" if getattr(args, "confirm", False) else "primary"
    if role == "confirm" and campaign is None:
        raise ConfigError("--confirm re-runs a campaign's configuration: give --campaign-run-id")
    attempt = getattr(args, "attempt", 1)
    if attempt < 1:
        raise ConfigError(f"--attempt counts from 1, not {attempt}")
    quiet = getattr(args, "quiet", False) or not primary
    result = run_benchmark(
        config,
        campaign=campaign,
        progress=None if quiet else ProgressPrinter,
        observer=report,
        role=role,
    )
    # the runner measures; which try of a task this is, is the campaign's bookkeeping
    result = dataclasses.replace(result, attempt=attempt)
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
    loaded = stored and store_result(result)
    report.finished(result, result_path=output, recorded=stored)
    if loaded and result.ok:
        print_agreement(result)
    if not result.ok:
        raise BenchmarkFailed(f"run {result.status}: {result.error}")
    return 0


def store_result(result: RunResult) -> bool:
    """Spool the result, then load the spool into the results DB (stays
    spooled, with a message, when the DB is unreachable); whether it loaded."""
    from bench.store.spool import spool_and_load

    outcome = spool_and_load(result)
    print(outcome.message, file=sys.stderr)
    return outcome.loaded


def print_agreement(result: RunResult) -> None:
    """The run's agreement with the newest stored run of the same configuration
    at a more precise precision (README "Outputs"), when one exists."""
    from bench.errors import BenchError
    from bench.outputs import cli_agreement, greedy
    from bench.report.text import format_agreement
    from bench.store.db import get_engine

    if not greedy(result.config.to_dict()):
        return
    try:
        found = cli_agreement(get_engine(), result.run_uid)
    except BenchError as exc:  # the result is stored; the comparison is a bonus
        print(f"bench: no agreement with a reference run: {exc}", file=sys.stderr)
        return
    if found is not None:
        print(format_agreement(found))
