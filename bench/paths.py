"""``$BENCH_HOME`` and the state kept under it (default ``./.bench``)."""

from __future__ import annotations

import os
from pathlib import Path


def bench_home() -> Path:
    return Path(os.environ.get("BENCH_HOME") or ".bench").expanduser().resolve()


def spool_dir() -> Path:
    """Result files waiting to be loaded into the results DB."""
    return bench_home() / "spool"


def loaded_dir() -> Path:
    """Result files already loaded (kept as the raw record of each run)."""
    return spool_dir() / "loaded"


def reports_dir() -> Path:
    return bench_home() / "reports"


def models_dir() -> Path:
    return bench_home() / "models"


def pgdata_dir() -> Path:
    """Data directory of the embedded Postgres used when BENCH_DB_URL is unset."""
    return bench_home() / "pgdata"


def quant_dir() -> Path:
    """fp8 measurement statistics, one subfolder per model and software stack."""
    return bench_home() / "quant"


def prompt_cache_dir() -> Path:
    """Token-exact prompt sets, by tokenizer content and shape (bench.core.prompts.exact)."""
    return bench_home() / "prompt-cache"
