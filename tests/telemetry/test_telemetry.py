"""Telemetry: the host sampler for real, NVML / HLML / nvidia-smi / hl-smi parsing on recorded outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.backends.habana.device import parse_hl_smi_query
from bench.backends.smi import parse_nvidia_smi
from bench.telemetry import Reading, TelemetrySampler, summarize, telemetry_sampler, throttle_mark
from bench.telemetry.hlml import hlml_reading
from bench.telemetry.host import HostSource, throttle_count
from bench.telemetry.nvml import nvml_reading

DATA = Path(__file__).parent.parent / "data"


def recorded(name: str) -> list[dict[str, object]]:
    return json.loads((DATA / name).read_text())


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_host_sampler_for_real_over_a_busy_window() -> None:
    sampler = TelemetrySampler([HostSource()], interval_s=0.2)
    sampler.start()
    burn(1.2)
    summary = sampler.stop()
    assert summary is not None
    assert summary["sources"] == ["host"] and summary["samples"] >= 5  # start + ~6 polls + stop
    fields = summary["fields"]
    util = fields["cpu_utilization_pct"]
    assert 0 <= util["min"] <= util["median"] <= util["max"] <= 100
    assert util["max"] > 20  # one core was busy the whole window
    assert fields["load_1m"]["max"] > 0
    assert "cpu_steal_pct" in fields  # Linux reports steal time (0 on bare metal)
    assert summary["throttled"] is False and summary["throttle_reasons"] == []
    assert throttle_mark(summary) == ""


def test_a_run_without_a_gpu_driver_samples_the_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    sampler = telemetry_sampler("cuda")  # nvidia-ml-py is installed, no driver here
    assert sampler is not None and [s.name for s in sampler.sources] == ["host"]
    assert [s.name for s in telemetry_sampler("hpu", remote=True).sources] == ["host"]  # type: ignore[union-attr]
    monkeypatch.setenv("RANK", "3")  # a tensor-parallel peer: rank 0 reports for the job
    assert telemetry_sampler("cpu") is None


def test_cpu_thermal_throttling_is_the_growth_of_the_kernel_counters(tmp_path: Path) -> None:
    for cpu in (0, 1):
        d = tmp_path / f"cpu{cpu}" / "thermal_throttle"
        d.mkdir(parents=True)
        (d / "core_throttle_count").write_text("7\n")
    assert throttle_count(tmp_path) == 14
    assert throttle_count(tmp_path / "nowhere") is None
    source = HostSource(sysfs=tmp_path)
    assert not next(iter(source.read())).throttle
    (tmp_path / "cpu1" / "thermal_throttle" / "core_throttle_count").write_text("9\n")
    assert next(iter(source.read())).throttle == {"cpu_thermal"}


def test_nvml_steady_gpu_is_not_throttled() -> None:
    readings = [nvml_reading(raw) for raw in recorded("nvml/h100_steady.json")]
    summary = summarize(readings, sources=["nvml"], interval_s=0.5)
    assert summary is not None and summary["throttled"] is False  # GPU idle (0x1) is not throttling
    assert summary["fields"]["device_clock_mhz"] == {"min": 1980.0, "median": 1980.0, "max": 1980.0}
    assert summary["fields"]["device_power_w"]["max"] == 650.5  # milliwatts -> watts


def test_nvml_thermal_slowdown_is_marked() -> None:
    readings = [nvml_reading(raw) for raw in recorded("nvml/h100_thermal.json")]
    summary = summarize(readings, sources=["nvml"], interval_s=0.5)
    assert summary is not None
    assert summary["throttle_reasons"] == ["hw_thermal", "power_cap"]
    assert throttle_mark(summary) == "throttled (hw_thermal, power_cap)"
    clock = summary["fields"]["device_clock_mhz"]
    assert clock["min"] == 1395.0 and clock["max"] == 1980.0 and summary["samples"] == 5
    assert (
        summary["fields"]["device_temperature_c"]["median"] == 89.0
    )  # a poll missing its clock still counts


def test_hlml_two_cards_power_limited() -> None:
    readings = [hlml_reading(raw) for raw in recorded("hlml/gaudi2_two_cards.json")]
    summary = summarize(readings, sources=["hlml"], interval_s=0.5)
    assert summary is not None and summary["throttle_reasons"] == ["power"]
    assert summary["fields"]["device_clock_mhz"]["min"] == 1650.0
    assert summary["fields"]["device_power_w"]["max"] == 600.0
    assert hlml_reading({"throttle_mask": 3}).throttle == {"power", "thermal"}


def test_summary_of_nothing_is_none() -> None:
    assert summarize([], sources=["host"], interval_s=0.5) is None
    assert summarize([Reading({})], sources=["host"], interval_s=0.5)["fields"] == {}  # type: ignore[index]


def test_nvidia_smi_parser() -> None:
    facts = parse_nvidia_smi((DATA / "nvidia_smi" / "eight_h100.csv").read_text())
    assert facts.count == 8 and facts.name == "NVIDIA H100 80GB HBM3"
    assert facts.driver_version == "550.54.15" and facts.firmware_version == "96.00.99.00.01"
    odd = parse_nvidia_smi((DATA / "nvidia_smi" / "with_header.csv").read_text())
    assert odd.count == 1 and odd.name == "NVIDIA H200" and odd.firmware_version is None
    assert parse_nvidia_smi("").count == 0


def test_hl_smi_query_parser() -> None:
    facts = parse_hl_smi_query((DATA / "hlsmi" / "query_two_cards.txt").read_text())
    assert facts.count == 2 and facts.name == "HL-225"
    assert facts.driver_version == "1.19.1-6f47ddd"
    assert facts.firmware_version is not None
    assert facts.firmware_version.startswith(
        "Linux gaudi2 5.10.18-hl-gaudi2-1.19.1-fw-51.2.0-sec-9"
    )
    assert parse_hl_smi_query("no such output").count == 0
