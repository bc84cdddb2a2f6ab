"""What identifies the weights a run loaded, without reading them whole.

Stored in the environment record (``model_revision``): a re-uploaded or
re-quantized checkpoint under the same name is a change the gate should
name, like a driver upgrade.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SHA = re.compile(r"^[0-9a-f]{12,64}$")

#: Files whose content defines a model directory besides its weights.
_MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: Bytes read from each weight file at each sampled offset.
SAMPLE_BYTES = 64 * 1024
#: Offsets sampled per weight file (evenly spread, first and last block included).
SAMPLES_PER_FILE = 8


def model_revision(path: str, commit_hash: str | None = None) -> str | None:
    """What identifies the weights a run loaded, cheaply.

    * a hub snapshot: its commit (``commit_hash`` as transformers reports it,
      or the ``snapshots/<commit>`` directory the files live in);
    * any other local directory: ``sha256:`` of the small files that define
      the model (config, generation config, weight index, tokenizer) plus,
      per weight file, its size and :data:`SAMPLES_PER_FILE` blocks of
      :data:`SAMPLE_BYTES` spread over it. Multi-GB weights are never read
      whole: a retrained or re-quantized checkpoint changes bytes everywhere
      and is seen; an edit confined to unsampled bytes is not.
    """
    if commit_hash:
        return commit_hash
    local = Path(path).expanduser()
    if not local.is_dir():
        return None
    resolved = local.resolve()
    if resolved.parent.name == "snapshots" and _SHA.match(resolved.name):
        return resolved.name
    return "sha256:" + _directory_digest(resolved)[:16]


def _directory_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for name in _MODEL_FILES:
        file = root / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    for file in sorted(p for p in root.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.name}\0{size}\0".encode())
        with file.open("rb") as fh:
            for offset in _sample_offsets(size):
                fh.seek(offset)
                digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _sample_offsets(size: int) -> list[int]:
    if size <= SAMPLE_BYTES * SAMPLES_PER_FILE:
        return list(range(0, size, SAMPLE_BYTES))
    last = size - SAMPLE_BYTES
    return sorted({round(i * last / (SAMPLES_PER_FILE - 1)) for i in range(SAMPLES_PER_FILE)})
