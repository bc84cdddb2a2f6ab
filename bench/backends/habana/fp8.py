"""fp8 on Gaudi: Intel Neural Compressor's two passes and their cache.

INC quantizes in two runs, each steered by the JSON file that the
``QUANT_CONFIG`` environment variable names:

1. measure (``bench/backends/habana/quant/maxabs_measure.json``): the bf16 model, its
   supported modules patched with observers, runs calibration prompts; then
   ``finalize_calibration`` writes per-module max-abs statistics under
   ``dump_stats_path``;
2. quantize (``bench/backends/habana/quant/maxabs_quant.json``): a fresh model is converted
   to fp8 with scales computed from those statistics.

Measuring takes minutes on a big model, so the statistics are cached under
``$BENCH_HOME/quant/<model>/<key>/`` and reused on later nights. The key
hashes everything that makes old statistics wrong: the weights' location,
the software stack (torch, SynapseAI plugin, optimum-habana, INC,
transformers, DeepSpeed), the device generation (Gaudi 2 scales do not fit
Gaudi 3), the tensor-parallel size (statistics are per shard), the
calibration data and the measure config itself.

Concurrent runs may measure the same key: each measures into a private
staging directory and the first to finish renames it into place; the others
keep their own copy for that run and delete it. This module holds the
file-level logic; the INC calls live in ``bench.backends.habana.backend``.

The two passes run in two processes, as optimum-habana's reference does
(two ``run_generation.py`` launches with different ``QUANT_CONFIG``): the
measure pass is ``bench fp8-measure`` (:func:`measure_command`), then the
benchmark's own process loads the model once, quantized. A measure model, its
observers and (under tensor parallel) its DeepSpeed engine never share a
process with the model being benchmarked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.hashing import canonical_json, sha256_hex
from bench.errors import ConfigError, ModelLoadError
from bench.paths import quant_dir

if TYPE_CHECKING:
    from bench.core.config import RunConfig

log = logging.getLogger(__name__)

#: The INC configs shipped as package data (pyproject: ``backends/habana/quant/*.json``).
QUANT_TEMPLATES = Path(__file__).resolve().parent / "quant"
MEASURE_CONFIG = "maxabs_measure.json"
QUANT_CONFIG = "maxabs_quant.json"

#: Distributions whose versions invalidate measurements (first found wins
#: for INC, which ships under different names in and outside Habana images).
STACK_PACKAGES: tuple[tuple[str, ...], ...] = (
    ("torch",),
    ("habana-torch-plugin",),
    ("optimum-habana",),
    ("neural-compressor-pt", "neural-compressor", "neural_compressor_pt"),
    ("transformers",),
    ("deepspeed",),
)

_DONE = "done-rank{rank}.json"


def load_template(name: str) -> dict[str, Any]:
    """A quant config shipped in the package (``bench/backends/habana/quant/*.json``)."""
    try:
        text = (QUANT_TEMPLATES / name).read_text()
    except FileNotFoundError:
        raise ConfigError(f"quant config {name} is missing from the bench package") from None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"quant config {name} must hold a JSON object")
    return data


def stack_versions() -> dict[str, str]:
    """Installed versions of the packages in :data:`STACK_PACKAGES`."""
    found: dict[str, str] = {}
    for names in STACK_PACKAGES:
        for name in names:
            try:
                found[names[0]] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def measurement_key(
    *,
    model_path: str,
    versions: Mapping[str, str],
    device_name: str,
    world_size: int,
    calibration: Mapping[str, Any],
    measure_config: Mapping[str, Any],
) -> str:
    """Short sha256 of everything that must match to reuse statistics."""
    ident = {
        "model_path": model_path,
        "versions": dict(versions),
        "device_name": device_name,
        "world_size": world_size,
        "calibration": dict(calibration),
        # dump_stats_path is where *this* copy lives, not what it measured
        "measure_config": {k: v for k, v in measure_config.items() if k != "dump_stats_path"},
    }
    return sha256_hex(canonical_json(ident))[:16]


def model_slug(model: str) -> str:
    """A directory name for a model label or hub id (``org/name`` -> ``org--name``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip().strip("/").replace("/", "--")).strip("-.")
    return slug or "model"


def measurement_dir(model: str, key: str) -> Path:
    return quant_dir() / model_slug(model) / key


def stats_prefix(directory: Path) -> str:
    """INC's ``dump_stats_path``: a directory plus a file-name prefix."""
    return str(directory / "stats" / "measure")


def render_config(template: str, directory: Path) -> Path:
    """Write ``template`` into ``directory`` with its statistics path pointing there.

    The returned path is what ``QUANT_CONFIG`` is set to for the pass.
    """
    data = load_template(template)
    data["dump_stats_path"] = stats_prefix(directory)
    (directory / "stats").mkdir(parents=True, exist_ok=True)
    path = directory / template
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def staging_dir(final: Path, token: str) -> Path:
    """A private directory next to ``final`` for one run's measurement.

    ``token`` must be the same on every rank of a tensor-parallel job and
    differ between jobs (the launcher's MASTER_PORT, or the pid alone).
    """
    return final.with_name(f"{final.name}.staging-{token}")


def mark_done(directory: Path, rank: int, info: Mapping[str, Any] | None = None) -> None:
    """Record that ``rank`` wrote its statistics (after finalize_calibration)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _DONE.format(rank=rank)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dict(info or {}), sort_keys=True) + "\n")
    os.replace(tmp, path)


def is_complete(directory: Path, world_size: int) -> bool:
    """Every rank of a ``world_size`` job finished measuring into ``directory``."""
    return all((directory / _DONE.format(rank=r)).is_file() for r in range(world_size))


def promote(staging: Path, final: Path, world_size: int) -> Path:
    """Move a finished staging measurement into the cache; return the
    directory the quantize pass should read.

    The rename is atomic: if another run got there first (``final`` exists
    and is complete), its statistics win and this staging copy is removed.
    A leftover incomplete ``final`` (a crash mid-promotion is impossible,
    but a hand-made directory is not) is replaced.
    """
    if not is_complete(staging, world_size):
        raise ConfigError(f"fp8 measurement in {staging} is incomplete")
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not is_complete(final, world_size):
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(staging, final)
    except OSError:
        if not is_complete(final, world_size):
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return final


@dataclass(frozen=True)
class Measurement:
    """Where one model's statistics live and whether they must be measured."""

    final: Path
    key: str
    world_size: int

    @property
    def needed(self) -> bool:
        return not is_complete(self.final, self.world_size)


def plan_measurement(
    *,
    model: str,
    model_path: str,
    device_name: str,
    world_size: int,
    calibration: Mapping[str, Any],
    versions: Mapping[str, str] | None = None,
) -> Measurement:
    key = measurement_key(
        model_path=model_path,
        versions=stack_versions() if versions is None else versions,
        device_name=device_name,
        world_size=world_size,
        calibration=calibration,
        measure_config=load_template(MEASURE_CONFIG),
    )
    return Measurement(final=measurement_dir(model, key), key=key, world_size=world_size)


def measure_command(config: RunConfig) -> list[str]:
    """argv of ``bench fp8-measure`` for ``config``, launched like its benchmark
    (on ``world_size`` cards through DeepSpeed's launcher when > 1)."""
    from bench.backends.habana.launch import launch_command

    return launch_command(config, ["--config", json.dumps(config.to_dict())], command="fp8-measure")


def measure_in_child(config: RunConfig, argv: Sequence[str] | None = None) -> None:
    """Run the measure pass in a child process and wait for it.

    Its output goes where ours goes; a failure raises :class:`ModelLoadError`
    with the child's one-line error (``bench: error: ...``) or last line.
    """
    argv = list(argv) if argv is not None else measure_command(config)
    log.info("fp8: measuring in a child process (%s)", " ".join(argv[2:4]))
    proc = subprocess.run(argv, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        last = next((x for x in reversed(lines) if x.startswith("bench: ")), None)
        detail = last or (lines[-1] if lines else f"exit code {proc.returncode}")
        detail = detail.removeprefix("bench: ").removeprefix("error: ")
        raise ModelLoadError(f"fp8 measurement failed in its own process: {detail}")
