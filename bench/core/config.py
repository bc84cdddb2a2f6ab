"""One benchmark configuration, validated once, frozen, fingerprinted.

Everything downstream (runner, backends, store, DAGs) receives a
:class:`RunConfig`; no argparse namespace or raw dict travels further than
:meth:`RunConfig.from_mapping`. The fingerprint is the history key: two runs
are comparable across nights and machines exactly when their fingerprints
match, so it covers every field that changes what is measured and nothing
that does not (warmup count, where the weights live, SLOs, labels).

Each field is declared once, with a :func:`~bench.core.fields.setting` that
says its bounds, help text, ``bench run`` flag, fingerprint and database
role, and how campaign files and the trigger form use it. Adding a field is
one declaration here (plus a migration when it gets a ``benchmark_config``
column): see ``docs/architecture.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench.core.envvars import PATH_VARS, expand
from bench.core.fields import Declared, Invalid, Value, declared, setting
from bench.core.hashing import canonical_json, frozen, sha256_hex, thawed
from bench.errors import ConfigError

#: ``unknown``: what an HTTP endpoint serves, unless the user says (the
#: client cannot see the server's weights); in-process backends refuse it.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "unknown")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "hpu")
CONCRETE_DEVICES: tuple[str, ...] = ("cpu", "cuda", "hpu")
#: How token times are taken (README "Timing modes"): the streamer's host
#: clock, device events, or a bare pass for throughput plus a streamed one.
TIMING_MODES: tuple[str, ...] = ("stream", "events", "dual")
#: Devices with timing events (``torch.cuda.Event``, ``habana_frameworks.torch.hpu.Event``).
EVENT_DEVICES: tuple[str, ...] = ("cuda", "hpu")

#: The prompt set name of seeded random token prompts (``bench.core.prompts.exact``).
RANDOM_PROMPTS = "random"
#: How long each request's output is: ``fixed`` (every request asks for
#: ``max_new_tokens``) or ``dataset`` (its reference reply's length, capped).
OUTPUT_LENGTHS: tuple[str, ...] = ("fixed", "dataset")

#: Sections: ``bench run --help`` groups and trigger-form sections.
MODEL, LOAD, SLO = "Model and device", "Load", "Goodput SLOs"


def _backend_names() -> Sequence[str]:
    from bench.backends import BACKENDS  # the light registry, read when first needed

    return tuple(BACKENDS)


@dataclass(frozen=True)
class RunConfig:
    """One model x precision x batch-size (or concurrency) configuration."""

    # fmt: off
    model: str = setting(
        Value(str, non_empty=True, variables=PATH_VARS),
        "hub id or local model directory; the model's name in results",
        title="Model", section=MODEL, column=True,
    )
    model_path: str | None = setting(
        Value(str, optional=True, variables=PATH_VARS),
        "load the weights from here (hub id or directory); results keep the model's name",
        default=None, title="Weights path", section=MODEL, unset="the model's name",
        fingerprint=False, model_key="path",
    )
    precision: str = setting(
        Value(str, choices=PRECISIONS, optional=True),
        "weights and compute dtype (fp8: Gaudi only, with Intel Neural Compressor; "
        "unknown: an endpoint's, which the client cannot see)",
        default=None, title="Precisions", section=MODEL, column=True,
        unset="the backend's: bf16 in process, unknown for an endpoint",
        backend_default="default_precision", axis="precisions", model_key="precisions",
    )
    batch_size: int = setting(
        Value(int, minimum=1, maximum=4096),
        "sequences per generate() call (in-process backends)",
        default=1, title="Batch sizes", section=LOAD, unit="sequences", column=True,
        axis="batch_sizes", model_key="batch_sizes", load_shape="batch",
    )
    max_new_tokens: int = setting(
        Value(int, minimum=1, maximum=32768),
        "output tokens per request (exactly this many unless stop at EOS is on; the cap "
        "with output lengths dataset)",
        default=128, title="Output tokens per request", section=LOAD, unit="tokens",
        column=True, campaign="max_new_tokens",
    )
    input_tokens: int | None = setting(
        Value(int, minimum=1, maximum=1_048_576, optional=True),
        "prompt tokens per request, exact for the model's tokenizer as the model sees them "
        "(chat template and BOS included), built from the prompt set's text "
        "(or random tokens: prompts random)",
        default=None, title="Input tokens per request", section=LOAD, unit="tokens",
        unset="the prompt set as is", column=True, legacy=None,
    )
    output_lengths: str = setting(
        Value(str, choices=OUTPUT_LENGTHS),
        "fixed: every request asks for the output tokens per request; dataset: each request "
        "asks for its reference reply's length in the model's tokens (a set from `bench prompts "
        "import`, as vLLM does for ShareGPT), capped at the output tokens per request",
        default="fixed", title="Output lengths", section=LOAD, column=True,
        campaign="output_lengths", legacy="fixed",
    )
    device: str = setting(
        Value(str, choices=DEVICES),
        "where the model runs (auto: hpu if a Gaudi card is visible, else cuda, else cpu)",
        default="auto", title="Device", section=MODEL, column=True, campaign="device",
        campaign_default="cpu", campaign_value=Value(str, choices=CONCRETE_DEVICES),
    )
    backend: str = setting(
        Value(str, choices=_backend_names),
        "how requests reach the model: hf (transformers), habana (optimum-habana, "
        "implied by device hpu) or openai (an HTTP endpoint)",
        default="hf", title="Backend", section=MODEL, column=True, campaign="backend",
        trigger=False,
    )
    target: str | None = setting(
        Value(str, optional=True, non_empty=True),
        "the campaign target (node pool) this run is routed to; ends the label in "
        "@<target>, not part of the fingerprint (the run stores its device model instead)",
        default=None, title="Target", section=MODEL, fingerprint=False, trigger=False,
    )
    device_model: str | None = setting(
        Value(str, optional=True, non_empty=True),
        "the device model this run must find (hl-smi's HL-325L, the CUDA device name, the "
        "CPU model); a node of another model fails before the model loads",
        default=None, title="Device model", section=MODEL, unset="any", fingerprint=False,
        trigger=False,
    )
    warmup: int = setting(
        Value(int, minimum=0, maximum=100),
        "unmeasured iterations (batches) before measuring; graph compilation on HPU",
        default=1, title="Warmup iterations", section=LOAD, unit="iterations",
        fingerprint=False, campaign="warmup",
    )
    prompts: str = setting(
        Value(str, non_empty=True),
        "prompt set: a name under prompts/ or a .txt/.jsonl path on the machine that runs",
        default="default", title="Prompt set", section=LOAD, fingerprint=False,
        campaign="prompts",
    )
    limit: int | None = setting(
        Value(int, minimum=1, optional=True),
        "measured requests per configuration; the set is cycled when shorter",
        default=None, title="Requests per configuration", section=LOAD, unit="requests",
        unset="the whole prompt set", fingerprint=False, campaign="limit",
    )
    seed: int = setting(
        Value(int, minimum=0),
        "random seed for sampling (decoding is greedy unless the option do_sample is set)",
        default=0, title="Seed", section=LOAD, column=True, campaign="seed",
    )
    ignore_eos: bool = setting(
        Value(bool),
        "let each sequence end at its own EOS; by default every request produces exactly "
        "the output tokens asked for, so runs stay comparable",
        default=True, title="Stop at EOS", section=LOAD, flag="--stop-at-eos", column=True,
        campaign="stop_at_eos", inverted=True,
    )
    trust_remote_code: bool = setting(
        Value(bool),
        "run the model repository's own Python code (transformers trust_remote_code); "
        "a campaign opts in per model",
        default=False, title="Trust remote code", section=MODEL, fingerprint=False,
        model_key="trust_remote_code",
    )
    world_size: int = setting(
        Value(int, minimum=1, maximum=64),
        "cards per configuration, tensor parallel (habana backend)",
        default=1, title="Cards per configuration", section=LOAD, unit="cards", column=True,
        model_key="world_size",
    )
    concurrency: int | None = setting(
        Value(int, minimum=1, maximum=4096, optional=True),
        "requests in flight, closed loop (openai backend)",
        default=None, title="Concurrency levels", section=LOAD, unit="requests",
        unset="1 unless a request rate is set", column=True, axis="concurrencies",
        load_shape="stream",
    )
    request_rate: float | None = setting(
        Value(float, positive=True, optional=True),
        "request arrivals per second, open loop (openai backend)",
        default=None, title="Request rates", section=LOAD, unit="req/s",
        unset="closed loop", column=True, axis="request_rates", load_shape="stream",
    )
    slo_ttft_ms: float | None = setting(
        Value(float, positive=True, optional=True),
        "a good request's time to first token is at most this (goodput)",
        default=None, title="TTFT SLO", section=SLO, unit="ms", fingerprint=False,
        campaign="slo.ttft_ms",
    )
    slo_tpot_ms: float | None = setting(
        Value(float, positive=True, optional=True),
        "a good request's time per output token is at most this (goodput)",
        default=None, title="TPOT SLO", section=SLO, unit="ms", fingerprint=False,
        campaign="slo.tpot_ms",
    )
    timing: str | None = setting(
        Value(str, choices=TIMING_MODES, optional=True),
        "how token times are taken: stream (host clock as each token reaches the host), "
        "events (device events, no per-step sync; cuda/hpu), dual (a bare pass for "
        "throughput and E2E, a streamed pass for TTFT and ITL)",
        default=None, title="Timing mode", section=LOAD, unset="dual on hpu, stream elsewhere",
        column=True, campaign="timing", legacy="stream", resolved=lambda c: c.effective_timing,
    )
    no_outputs: bool = setting(
        Value(bool),
        "keep no generated token ids or text, only their sha256 digests (output drift is "
        "still detected; output_prefix_match needs the ids)",
        default=False, title="Keep no outputs", section=LOAD, fingerprint=False,
        campaign="no_outputs", trigger=False,
    )
    options: Mapping[str, Any] = setting(
        Value(dict),
        "backend options (KEY=VALUE, VALUE as JSON), checked against the backend's table",
        default=MappingProxyType({}), title="Backend options", section=MODEL, flag="--option",
        campaign="options", model_key="options", trigger=False,
    )
    # fmt: on

    def __post_init__(self) -> None:
        for field in declared(type(self)):
            value = getattr(self, field.name)
            if value is None and field.setting.backend_default:
                from bench.backends import get_spec

                value = getattr(get_spec(self.backend), field.setting.backend_default)
            try:
                value = field.setting.value.check(value)
            except Invalid as exc:
                raise ConfigError(field.setting.value.message(field.name, exc)) from None
            object.__setattr__(self, field.name, value)
        object.__setattr__(self, "model", self.model.strip())
        object.__setattr__(self, "options", frozen(dict(self.options)))
        if self.timing == "events" and self.device not in ("auto", *EVENT_DEVICES):
            raise ConfigError(
                f"timing events needs device timing events ({'/'.join(EVENT_DEVICES)}); "
                f"{self.device} has none: use timing stream or dual"
            )
        if self.prompts == RANDOM_PROMPTS and self.input_tokens is None:
            raise ConfigError(
                f"prompts {RANDOM_PROMPTS} needs input_tokens (--input-tokens N): random "
                "prompts have no length of their own"
            )
        if self.output_lengths == "dataset" and self.input_tokens is not None:
            raise ConfigError(
                "output_lengths dataset takes each request's length from its prompt's reply; "
                "token-exact prompts (input_tokens) have no reply of their own: use one or the other"
            )
        if self.precision == "fp8" and self.device in ("cpu", "cuda"):
            raise ConfigError(
                f"precision fp8 is supported on hpu only (Intel Neural Compressor), not on {self.device}"
            )
        # Backend-specific checks (devices, load shape, option names) live
        # with the backend registry so every entry point shares them.
        from bench.backends import validate_config

        validate_config(self)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a dict (campaign entry, JSON on a command line, DB row)."""
        unknown = sorted(set(data) - {f.name for f in declared(cls)})
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        if "model" not in data:
            raise ConfigError("config needs a 'model'")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}

    # -- identity ---------------------------------------------------------------------

    @property
    def load_path(self) -> str:
        """Where the weights come from: ``model_path`` if set, else ``model``;
        ``${VAR}`` from :data:`~bench.core.envvars.PATH_VARS` and ``~`` expand
        at load time, on the machine that loads."""
        return expand(self.model_path or self.model, PATH_VARS)

    @property
    def effective_timing(self) -> str:
        """``timing``, or the default of this backend on this (resolved) device."""
        return self.timing or default_timing(self.backend, self.device)

    @property
    def label(self) -> str:
        """Short readable name, e.g. ``llama-2-7b/bf16/bs8`` or
        ``llama-2-7b/bf16/bs8/in128-out128`` (Airflow map index)."""
        name = self.model.rstrip("/").rsplit("/", 1)[-1]
        if self.concurrency is not None:
            shape = f"c{self.concurrency}"
        elif self.request_rate is not None:
            shape = f"r{self.request_rate:g}"
        else:
            shape = f"bs{self.batch_size}"
        tp = f"/tp{self.world_size}" if self.world_size > 1 else ""
        at = f"@{self.target}" if self.target else ""
        return f"{name}/{self.precision}/{shape}{tp}{self.shape_label}{at}"

    @property
    def shape_label(self) -> str:
        """``/in128-out128`` for a token-exact input length, ``/outds256`` for
        the dataset's output lengths capped at 256, else empty."""
        if self.output_lengths == "dataset":
            return f"/outds{self.max_new_tokens}"
        if self.input_tokens is None:
            return ""
        return f"/in{self.input_tokens}-out{self.max_new_tokens}"

    def identity(self, *, prompt_set_sha: str, n_requests: int) -> dict[str, Any]:
        """Everything that must match for two runs to be comparable.

        The fields declared ``fingerprint=True``, except a field added later
        whose value reproduces the behaviour from before it existed (its
        ``legacy``): existing histories keep their key. The prompt set enters
        by content hash (paths differ between machines) and the request count
        replaces ``limit`` (it is what was measured); backend options marked
        ``fingerprint=False`` (an API-key variable, a client timeout) stay out.
        """
        if self.device == "auto":
            raise ConfigError("resolve device 'auto' before fingerprinting")
        from bench.backends import get_spec

        ident: dict[str, Any] = {}
        for field in declared(type(self)):
            meta = field.setting
            value = thawed(meta.resolved(self) if meta.resolved else getattr(self, field.name))
            if meta.fingerprint and not (meta.has_legacy and value == meta.legacy_value(self)):
                ident[field.name] = value
        specs = get_spec(self.backend).options()
        ident["options"] = {
            k: v for k, v in ident["options"].items() if k not in specs or specs[k].fingerprint
        }
        ident["prompt_set_sha"] = prompt_set_sha
        ident["n_requests"] = n_requests
        return ident

    def fingerprint(self, *, prompt_set_sha: str, n_requests: int) -> str:
        """sha256 of the canonical JSON of :meth:`identity`."""
        return sha256_hex(
            canonical_json(self.identity(prompt_set_sha=prompt_set_sha, n_requests=n_requests))
        )


def default_timing(backend: str, device: str) -> str:
    """``dual`` for in-process generation on HPU, else ``stream``.

    On Gaudi with ``ignore_eos`` optimum-habana's loop has no per-step sync
    of its own, so the streamer's ``.cpu()`` per step slows generation
    (docs/gaudi.md): throughput comes from a bare pass until a measurement on
    hardware shows ``stream`` within 2% of it. On CPU and CUDA, HF's loop
    syncs every step anyway and streaming costs nothing (docs/performance.md).
    """
    from bench.backends import get_spec

    if device == "hpu" and "dual" in get_spec(backend).timings:
        return "dual"
    return "stream"


#: The declared fields of :class:`RunConfig`, in declaration order.
FIELDS: tuple[Declared, ...] = declared(RunConfig)
FIELD: Mapping[str, Declared] = MappingProxyType({f.name: f for f in FIELDS})


def column_values(config: RunConfig) -> dict[str, Any]:
    """The fields copied into ``benchmark_config`` columns (``column=True``)."""
    return {
        f.name: thawed(
            f.setting.resolved(config) if f.setting.resolved else getattr(config, f.name)
        )
        for f in FIELDS
        if f.setting.column
    }
