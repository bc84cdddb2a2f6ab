"""Backend options: their declaration (:class:`OptionSpec`) and the options
every in-process backend shares.

Light on purpose: config validation, campaign parsing and the Airflow
trigger form read these tables without importing any backend
implementation (no torch, no aiohttp, no optimum-habana).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import ConfigError


@dataclass(frozen=True)
class OptionSpec:
    """A backend option accepted in ``RunConfig.options`` / a campaign's ``options``."""

    type: type | tuple[type, ...]
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    #: False for operational settings (where a key lives, a client timeout)
    #: that do not change what is measured: they stay out of the fingerprint,
    #: so moving them does not start a new history.
    fingerprint: bool = True

    def check(self, backend: str, name: str, value: Any) -> None:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = "/".join(t.__name__ for t in types)
            raise ConfigError(f"{backend} option {name!r} must be {names}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{backend} option {name!r} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
            )


#: Options every in-process backend understands (campaign ``options:``).
COMMON_OPTIONS: dict[str, OptionSpec] = {
    "chat_template": OptionSpec(
        bool,
        False,
        "render prompts with the tokenizer's chat template (plain text becomes a user turn)",
    ),
    "do_sample": OptionSpec(bool, False, "sample instead of greedy decoding (seeded by --seed)"),
    "temperature": OptionSpec(float, None, "sampling temperature (with do_sample)"),
    "top_p": OptionSpec(float, None, "nucleus sampling mass (with do_sample)"),
    "top_k": OptionSpec(int, None, "top-k sampling (with do_sample)"),
}

#: The hf backend (transformers on CPU/CUDA).
HF_OPTIONS: dict[str, OptionSpec] = {
    **COMMON_OPTIONS,
    "attn_implementation": OptionSpec(
        str,
        None,
        "attention kernel passed to from_pretrained",
        ("eager", "sdpa", "flash_attention_2"),
    ),
}
