"""``habana``: optimum-habana ``generate()`` on Intel Gaudi (HPU).

Follows optimum-habana 1.21's text-generation example (run_generation.py and
its utils.py): ``adapt_transformers_to_gaudi()``, weights in the run's dtype
with eager attention, ``.eval().to("hpu")``, ``wrap_in_hpu_graph``, static
shapes with every prompt left-padded to one input length, the Gaudi
generation settings (:mod:`bench.backends.habana.options` maps the campaign options to
them), DeepSpeed inference for tensor parallelism and Intel Neural
Compressor for fp8 (:mod:`bench.backends.habana.fp8` keeps its measurements).

Batching, the timing modes and records come from
:class:`~bench.backends.inprocess.InProcessBackend`. Streamed timestamps are
honest on HPU (optimum-habana hands each step's tokens to the streamer as
``next_tokens.cpu()``, a host copy that waits for the device) but not free:
with ``ignore_eos`` that copy is the loop's only per-step sync, so the
default timing on HPU is ``dual`` (bare pass for throughput, streamed pass
for TTFT/ITL), and ``events`` times steps with ``habana_frameworks.torch.hpu.Event``.
generate() runs under ``no_grad``, as in optimum-habana's own example.

Nothing here has run on a Gaudi card yet (no HPU where it was written); see
docs/gaudi.md for what is verified and the first-run checklist.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.backends.base import BackendInfo, Request
from bench.backends.habana import fp8
from bench.backends.habana.device import GAUDI_DOCS, hpu_peak_memory_bytes, reset_hpu_peak_memory
from bench.backends.habana.launch import is_primary_rank, rank, rendezvous_token
from bench.backends.habana.options import (
    OPTIONS,
    GaudiSettings,
    fixed_input_length,
    gaudi_settings,
    lazy_mode_from_env,
    option,
)
from bench.backends.inprocess import (
    InProcessBackend,
    load_error,
    torch_dtype,
    transformers_dtype_kwarg,
)
from bench.backends.options import OptionSpec
from bench.core.config import RunConfig
from bench.core.prompts import Prompt, batched, load_prompt_set
from bench.errors import BenchError, ConfigError, DeviceError, ModelLoadError
from bench.power import PowerSampler

if TYPE_CHECKING:
    from bench.core.step_events import EventFactory

log = logging.getLogger(__name__)

#: Model types whose DeepSpeed row-parallel layers optimum-habana swaps for
#: ScopedLinearAllReduce (run_generation.py's patch_scoped_linear_all_reduce).
_SCOPED_ALLREDUCE_TYPES = ("llama", "falcon", "qwen2", "starcoder2", "gemma")
#: fp8 calibration runs this many prompts per generate() call.
CALIBRATION_BATCH_SIZE = 4


class HabanaBackend(InProcessBackend):
    name: ClassVar[str] = "habana"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = OPTIONS

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.settings: GaudiSettings | None = None
        self._lazy = lazy_mode_from_env(os.environ)
        self._input_length: int | None = None
        self._token_type_ids = False
        self._fp8_key: str | None = None

    # -- loading ------------------------------------------------------------------------

    def load(self) -> None:
        self._adapt()
        super().load()
        assert self.settings is not None
        for note in self.settings.notes:
            log.warning(note)

    def _adapt(self) -> None:
        """optimum-habana's patches to transformers. The bridge's environment
        was set by runner.prepare, before device detection first imported
        habana_frameworks (bench.backends.habana.device.apply_habana_env_defaults)."""
        try:
            from optimum.habana.transformers.modeling_utils import adapt_transformers_to_gaudi
        except ImportError as exc:
            raise DeviceError(
                f"optimum-habana cannot be imported ({exc}); install with pip install -e '.[hpu]'; {GAUDI_DOCS}"
            ) from None
        adapt_transformers_to_gaudi()

    def _load_model(self, path: str) -> Any:
        try:
            self.settings = self._settings_for(path)
            if self.config.precision == "fp8":
                return self._load_fp8(path)
            return self._load_on_hpu(path, quant_config=None)
        except BenchError:
            raise
        except Exception as exc:
            raise load_error(path, exc) from None

    def _settings_for(self, path: str) -> GaudiSettings:
        from optimum.habana.checkpoint_utils import model_is_optimized
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(
            path, trust_remote_code=self.config.trust_remote_code
        )
        return gaudi_settings(
            self.config.options,
            precision=self.config.precision,
            ignore_eos=self.config.ignore_eos,
            lazy_mode=self._lazy,
            model_optimized=model_is_optimized(model_config),
            world_size=self.config.world_size,
        )

    def _load_on_hpu(self, path: str, quant_config: Path | None) -> Any:
        """One model on its card(s); with ``quant_config``, INC's prepare/convert
        applied as run_generation.py's setup_quantization does (before .to)."""
        from transformers import AutoModelForCausalLM

        assert self.settings is not None
        dtype = torch_dtype(self.config.precision)
        kwargs: dict[str, Any] = {
            transformers_dtype_kwarg(): dtype,
            "trust_remote_code": self.config.trust_remote_code,
            "attn_implementation": option(self.config.options, "attn_implementation"),
        }
        if quant_config is not None:
            import habana_frameworks.torch.core as htcore

            os.environ["QUANT_CONFIG"] = str(quant_config)  # optimum's models read it too
            htcore.hpu_set_env()
        if self.config.world_size > 1:
            model = self._deepspeed_model(path, dtype, kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if quant_config is not None:
            model = _apply_inc(model, quant_config)
        if self.config.world_size == 1:
            model = model.eval().to("hpu")
            if self.settings.wrap_in_hpu_graph:
                from habana_frameworks.torch.hpu import wrap_in_hpu_graph

                model = wrap_in_hpu_graph(model)
        if quant_config is not None:
            import habana_frameworks.torch.core as htcore

            htcore.hpu_initialize(model, mark_only_scales_as_const=True)
        self._token_type_ids = (getattr(model.config, "type_vocab_size", 0) or 0) > 0
        return model

    def _deepspeed_model(self, path: str, dtype: Any, kwargs: dict[str, Any]) -> Any:
        """Tensor parallel across ``world_size`` cards (run_generation.py's
        setup_distributed_model): meta-device construction plus a checkpoint
        list for the model types optimum-habana loads that way."""
        import deepspeed
        import torch
        from optimum.habana.checkpoint_utils import (
            get_ds_injection_policy,
            get_repo_root,
            model_on_meta,
            write_checkpoints_json,
        )
        from transformers import AutoConfig, AutoModelForCausalLM

        assert self.settings is not None
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        get_repo_root(path, local_rank=local_rank)
        if not torch.distributed.is_initialized():
            deepspeed.init_distributed(dist_backend="hccl")
        config = AutoConfig.from_pretrained(
            path,
            torch_dtype=dtype,
            trust_remote_code=self.config.trust_remote_code,
            attn_implementation=kwargs["attn_implementation"],
        )
        ds_kwargs: dict[str, Any] = {
            "dtype": dtype,
            "tensor_parallel": {"tp_size": self.config.world_size},
            "enable_cuda_graph": self.settings.deepspeed_graphs,
            "injection_policy": get_ds_injection_policy(config),
        }
        with tempfile.NamedTemporaryFile(suffix=".json", mode="w+") as checkpoints:
            if model_on_meta(config):
                # optimum-habana caps llama's positions for meta loading
                if (
                    config.model_type == "llama"
                    and getattr(config, "max_position_embeddings", 0) > 8192
                ):
                    config.max_position_embeddings = 8192
                with deepspeed.OnDevice(dtype=dtype, device="meta"):
                    model = AutoModelForCausalLM.from_config(
                        config, **{transformers_dtype_kwarg(): dtype}
                    )
                write_checkpoints_json(path, local_rank, checkpoints)
                ds_kwargs["checkpoint"] = checkpoints.name
            else:
                with deepspeed.OnDevice(dtype=dtype, device="cpu"):
                    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            model.eval()
            model = deepspeed.init_inference(model, **ds_kwargs).module
        if config.model_type in _SCOPED_ALLREDUCE_TYPES:
            _use_scoped_allreduce(model)
        return model

    # -- fp8 ----------------------------------------------------------------------------

    def _calibration_requests(self) -> tuple[list[Request], dict[str, Any]]:
        prompt_set = load_prompt_set(self.config.prompts)
        wanted = int(option(self.config.options, "fp8_calibration_requests"))
        n = (
            -(-wanted // CALIBRATION_BATCH_SIZE) * CALIBRATION_BATCH_SIZE
        )  # whole batches: one shape
        prompts: list[Prompt] = [prompt_set.prompts[i % len(prompt_set)] for i in range(n)]
        requests = [Request(-1 - i, p) for i, p in enumerate(prompts)]
        described = {
            "prompt_set_sha": prompt_set.sha,
            "requests": n,
            "batch_size": CALIBRATION_BATCH_SIZE,
            "max_new_tokens": self.config.max_new_tokens,
            "chat_template": self._templated,
        }
        return requests, described

    def _fp8_plan(self, path: str) -> tuple[fp8.Measurement, list[Request], dict[str, Any]]:
        import habana_frameworks.torch.hpu as hthpu

        requests, calibration = self._calibration_requests()
        plan = fp8.plan_measurement(
            model=self.config.model,
            model_path=path,
            device_name=str(hthpu.get_device_name()),
            world_size=self.config.world_size,
            calibration=calibration,
        )
        self._fp8_key = plan.key
        return plan, requests, calibration

    def _load_fp8(self, path: str) -> Any:
        """INC's quantize pass, on statistics measured in another process.

        As optimum-habana's reference runs measure and quantize as two
        processes, the measure pass (a bf16 model patched with observers, and
        under tensor parallel a DeepSpeed engine of its own) never shares a
        process with the benchmarked model: a missing measurement is taken by
        a ``bench fp8-measure`` child first (the DAG's benchmark task runs
        that child itself, on as many cards as the config).
        """
        plan, _, _ = self._fp8_plan(path)
        if plan.needed:
            if self.config.world_size > 1:  # this job's ranks hold the cards it would need
                raise ModelLoadError(
                    f"no fp8 measurement of {path} for this software stack: run `bench fp8-measure` "
                    f"with this config on {self.config.world_size} cards first (the DAG does)"
                )
            fp8.measure_in_child(self.config)
            if plan.needed:
                raise ModelLoadError(
                    f"the fp8 measurement child finished without a complete measurement in {plan.final}"
                )
        else:
            log.info("fp8: reusing measurement %s", plan.final)
        quant_config = fp8.render_config(fp8.QUANT_CONFIG, plan.final)
        return self._load_on_hpu(path, quant_config=quant_config)

    def measure_fp8(self) -> fp8.Measurement:
        """INC's measure pass alone (``bench fp8-measure``): calibrate a bf16
        model with observers and cache its statistics; nothing is benchmarked."""
        if self.config.precision != "fp8":
            raise ConfigError(f"fp8-measure needs precision fp8, not {self.config.precision}")
        self._adapt()
        path = self._load_tokenizer()
        try:
            self.settings = self._settings_for(path)
            plan, requests, calibration = self._fp8_plan(path)
            if plan.needed:
                self._measure(path, plan, requests, calibration)
            else:
                log.info("fp8: measurement %s is cached", plan.final)
        except BenchError:
            raise
        except Exception as exc:
            raise load_error(path, exc) from None
        return plan

    def _measure(
        self,
        path: str,
        plan: fp8.Measurement,
        requests: Sequence[Request],
        calibration: Mapping[str, Any],
    ) -> None:
        world_size = self.config.world_size
        started = time.perf_counter()
        staging = fp8.staging_dir(plan.final, rendezvous_token(world_size))
        measure_config = fp8.render_config(fp8.MEASURE_CONFIG, staging)
        model = self._load_on_hpu(path, quant_config=measure_config)
        try:
            self._calibrate(model, requests)
            from neural_compressor.torch.quantization import finalize_calibration

            finalize_calibration(model)
        except Exception as exc:
            if world_size == 1:  # a tensor-parallel peer may still be writing
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, BenchError):
                raise
            message = f"fp8 measurement of {path} failed: {exc}".splitlines()[0]
            raise ModelLoadError(message) from None
        fp8.mark_done(staging, rank(), {"key": plan.key, "calibration": dict(calibration)})
        _barrier()
        if is_primary_rank():
            fp8.promote(staging, plan.final, world_size)
        _barrier()
        log.info(
            "fp8 measurement of %s took %.1f s -> %s",
            path,
            time.perf_counter() - started,
            plan.final,
        )

    def _calibrate(self, model: Any, requests: Sequence[Request]) -> None:
        """Run the calibration prompts through the same generate() path as the
        benchmark (static shapes, Gaudi settings), untimed."""
        self.model = model
        self.generation_config = self._generation_config()
        self.check(requests)
        for batch in batched(requests, CALIBRATION_BATCH_SIZE):
            texts = [self._texts[r.prompt.sha] for r in batch]
            self._generate(self._encode(texts).to(self._device()))
        self._input_length = None

    # -- generate() inputs ----------------------------------------------------------------

    def _generation_config(self) -> Any:
        from optimum.habana.transformers.generation import GaudiGenerationConfig

        assert self.settings is not None
        gen = super()._generation_config()
        if not isinstance(gen, GaudiGenerationConfig):
            gen = GaudiGenerationConfig.from_dict(gen.to_dict())
        # Fixed output length comes from ignore_eos on Gaudi (run_generation.py's
        # way); a min-length logits processor would add work to every step.
        gen.min_new_tokens = None
        for key, value in self.settings.generation_config.items():
            setattr(gen, key, value)
        return gen

    def check(self, requests: Sequence[Request]) -> None:
        """The base checks, then the one padded input length of this run."""
        super().check(requests)
        special = not self._templated
        texts = {self._texts[r.prompt.sha] for r in requests}
        longest = max(
            len(self.tokenizer(t, add_special_tokens=special)["input_ids"]) for t in texts
        )
        self._input_length = fixed_input_length(
            longest,
            max_input_tokens=self.config.options.get("max_input_tokens"),
            max_new_tokens=self.config.max_new_tokens,
            context=self.context_length(),
        )

    def _encode(self, texts: list[str]) -> Any:
        """Left-pad to the run's fixed input length (static shapes: one compiled
        graph for every batch) and tell the model each row's real length, as
        run_generation.py does with --max_input_tokens."""
        import torch

        if self._input_length is None:
            return super()._encode(texts)
        enc = pad_to_length(
            self.tokenizer,
            texts,
            self._input_length,
            add_special_tokens=not self._templated,
            token_type_ids=self._token_type_ids,
        )
        self.generation_config.valid_sequence_lengths = torch.sum(
            enc["attention_mask"], dim=1, dtype=torch.int32
        ).to(self._device())
        return enc

    def _generate_kwargs(self) -> dict[str, Any]:
        assert self.settings is not None
        return dict(self.settings.generate_kwargs)

    def _length_kwargs(self, batch: Sequence[Request]) -> dict[str, Any]:
        """Every batch generates ``max_new_tokens`` steps, also when its
        requests ask for fewer (``output_lengths: dataset``): the static
        shapes (KV cache of input + max_new_tokens) then stay one compiled
        graph for the whole run; each request still keeps only its own
        tokens. Not run on a card yet (docs/gaudi.md)."""
        return {}

    def _grad_mode(self) -> Any:
        """``no_grad``, what optimum-habana's generate() and run_generation.py
        use; inference tensors are not what its HPU-graph and static-shape
        paths were validated with."""
        import torch

        return torch.no_grad()

    def _event_factory(self) -> EventFactory:
        from habana_frameworks.torch.hpu import Event

        return lambda: Event(enable_timing=True)

    def _event_flush(self) -> Callable[[], None] | None:
        """Lazy mode queues ops until ``mark_step``: launch them before an
        event so it lands behind the step's work (the loop's own mark_step at
        the top of the next step then finds nothing left to launch)."""
        if not self._lazy:
            return None
        import habana_frameworks.torch.core as htcore

        return htcore.mark_step

    # -- measurement helpers ----------------------------------------------------------------

    def reset_peak_memory(self) -> None:
        reset_hpu_peak_memory()

    def peak_memory_bytes(self) -> int | None:
        """Peak HPU memory of this process's card (rank 0's shard under TP)."""
        return hpu_peak_memory_bytes()

    def power_sampler(self) -> PowerSampler | None:
        if not is_primary_rank():
            return None
        from bench.backends.habana.hlsmi import hlsmi_sampler
        from bench.power.hlml import (
            hlml_energy_sampler,  # the energy counter; hl-smi samples else
        )

        return hlml_energy_sampler(self.config.world_size) or hlsmi_sampler(self.config.world_size)

    def info(self) -> BackendInfo:
        import habana_frameworks.torch.hpu as hthpu

        from bench.backends.habana.device import gaudi_firmware_version
        from bench.backends.habana.hlsmi import driver_version

        try:
            plugin: str | None = metadata.version("habana-torch-plugin")
        except metadata.PackageNotFoundError:
            plugin = None
        bridge_env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("PT_HPU")}
        extra: dict[str, Any] = {"lazy_mode": self._lazy, "bridge_env": bridge_env}
        if self._fp8_key is not None:
            extra["fp8_measurement"] = self._fp8_key
        return BackendInfo(
            device_name=str(hthpu.get_device_name()),
            device_count=int(hthpu.device_count()),
            driver_version=driver_version(),
            runtime_version=f"habana-torch-plugin {plugin}" if plugin else None,
            firmware_version=gaudi_firmware_version(),
            model_revision=self.revision,
            extra=extra,
        )

    def close(self) -> None:
        self.model = None
        gc.collect()


def pad_to_length(
    tokenizer: Any, texts: list[str], length: int, *, add_special_tokens: bool, token_type_ids: bool
) -> Any:
    """Tokenize ``texts`` left-padded to exactly ``length`` tokens (the
    tokenizer pads on the left, as generate() needs); never truncates."""
    too_long = ConfigError(
        f"a prompt is longer than the run's padded input length of {length} tokens"
    )
    try:
        enc = tokenizer(
            texts,
            return_tensors="pt",
            padding="max_length",
            max_length=length,
            add_special_tokens=add_special_tokens,
            return_token_type_ids=token_type_ids,
        )
    except ValueError:  # rows of different lengths: some exceed max_length
        raise too_long from None
    if enc["input_ids"].shape[1] != length:
        raise too_long
    return enc


def _apply_inc(model: Any, quant_config: Path) -> Any:
    """INC's documented entry points, driven by the config file's mode."""
    from neural_compressor.torch.quantization import FP8Config, convert, prepare

    config = FP8Config.from_json_file(str(quant_config))
    if config.measure:
        model = prepare(model, config)
    if config.quantize:
        model = convert(model, config)
    return model


def _barrier() -> None:
    """Wait for every tensor-parallel rank (no-op on one card)."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _use_scoped_allreduce(module: Any) -> None:
    """Swap DeepSpeed's LinearAllreduce for optimum-habana's ScopedLinearAllReduce
    (lets optimum's decoder layers place the all-reduce themselves)."""
    from deepspeed.module_inject.layers import LinearAllreduce
    from optimum.habana.transformers.models.modeling_all_models import ScopedLinearAllReduce

    for name, child in list(module.named_children()):
        if type(child) is LinearAllreduce:
            setattr(module, name, ScopedLinearAllReduce(mod=child))
        else:
            _use_scoped_allreduce(child)
