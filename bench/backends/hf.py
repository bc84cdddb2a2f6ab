"""``hf``: transformers ``generate()`` in process, on CPU or an NVIDIA GPU."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bench.backends.base import BackendInfo
from bench.backends.devices import cpu_name, host_peak_rss_bytes, reset_host_peak_rss
from bench.backends.inprocess import (
    InProcessBackend,
    load_error,
    torch_dtype,
    transformers_dtype_kwarg,
)
from bench.backends.options import HF_OPTIONS, OptionSpec
from bench.power import PowerSampler

if TYPE_CHECKING:
    from bench.core.step_events import EventFactory


class HFBackend(InProcessBackend):
    name: ClassVar[str] = "hf"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = HF_OPTIONS

    def _load_model(self, path: str) -> Any:
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {
            transformers_dtype_kwarg(): torch_dtype(self.config.precision),
            "trust_remote_code": self.config.trust_remote_code,
        }
        if attn := self.config.options.get("attn_implementation"):
            kwargs["attn_implementation"] = attn
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except Exception as exc:
            raise load_error(path, exc) from None
        return model.to(self.config.device).eval()

    def _event_factory(self) -> EventFactory:
        if self.config.device != "cuda":
            return super()._event_factory()
        import torch

        return lambda: torch.cuda.Event(enable_timing=True)

    def reset_peak_memory(self) -> None:
        if self.config.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            reset_host_peak_rss()

    def peak_memory_bytes(self) -> int | None:
        """CUDA: peak bytes allocated by tensors; CPU: peak RSS of the process."""
        if self.config.device == "cuda":
            import torch

            return int(torch.cuda.max_memory_allocated())
        return host_peak_rss_bytes()

    def power_sampler(self) -> PowerSampler | None:
        if self.config.device != "cuda":
            return None
        import torch

        from bench.power.nvml import nvml_sampler

        return nvml_sampler(torch.cuda.current_device())

    def info(self) -> BackendInfo:
        import torch

        if self.config.device == "cuda":
            from bench.backends.smi import nvidia_smi_facts
            from bench.power.nvml import nvml_driver_version
            from bench.telemetry.nvml import nvml_firmware_version

            index = torch.cuda.current_device()
            driver, firmware = nvml_driver_version(), nvml_firmware_version(index)
            if driver is None or firmware is None:  # no NVML bindings: ask nvidia-smi
                facts = nvidia_smi_facts()
                driver, firmware = (
                    driver or facts.driver_version,
                    firmware or facts.firmware_version,
                )
            return BackendInfo(
                device_name=torch.cuda.get_device_name(),
                device_count=torch.cuda.device_count(),
                driver_version=driver,
                runtime_version=f"cuda {torch.version.cuda}",
                firmware_version=firmware,
                model_revision=self.revision,
            )
        return BackendInfo(
            device_name=cpu_name(),
            device_count=os.cpu_count(),
            model_revision=self.revision,
            extra={"torch_threads": torch.get_num_threads()},
        )
