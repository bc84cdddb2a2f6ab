"""hl-smi power: parsing recorded output, energy over a window, the sampler.

hl-smi exists only on Gaudi hosts. Parsing and integration are pure and run
on the sample files in tests/data/hlsmi/; the sampler's process and reader
thread run against a stand-in executable that prints the same CSV format.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from bench.backends.habana.hlsmi import (
    QUERY_FIELDS,
    CardReading,
    HlSmiSampler,
    card_energy,
    driver_version,
    hlsmi_command,
    hlsmi_sampler,
    parse_line,
    parse_output,
    visible_cards,
)
from bench.power import integrate_energy
from bench.power.hlml import cards_in_use

DATA = Path(__file__).parent.parent / "data" / "hlsmi"


def read(name: str) -> list[CardReading]:
    return parse_output((DATA / name).read_text())


def test_one_card() -> None:
    rows = read("one_card.csv")
    assert [r.watts for r in rows] == [312.0, 318.0, 421.0, 415.0]
    assert {(r.index, r.module_id, r.card) for r in rows} == {(0, 0, 0)}


def test_eight_cards_with_header_and_units() -> None:
    rows = read("eight_cards.csv")
    assert len(rows) == 24  # header and blank lines skipped
    assert sorted({r.card for r in rows}) == list(range(8))
    # index 0 sits in module 2; cards are told apart by module id
    assert [r.watts for r in rows if r.card == 2] == [300.0, 350.0, 400.0]
    assert [r.index for r in rows if r.card == 2] == [0, 0, 0]


def test_missing_fields() -> None:
    rows = read("missing_field.csv")
    assert len(rows) == 7  # the line with a field missing is dropped
    assert [r.watts for r in rows if r.card == 4] == [355.0, 360.0, 362.0, None]
    assert [r.watts for r in rows if r.card == 5] == [None, 298.0, 301.0]


@pytest.mark.parametrize(
    ("line", "watts"),
    [
        ("3, 3, 412.5", 412.5),
        ("3, 3, 412 W", 412.0),
        ("3,3,412W", 412.0),
        ('"3", "3", "412"', 412.0),
        ("3, 3, 412000 mW", 412.0),
        ("3, 3, [N/A]", None),
        ("3, 3, ", None),
    ],
)
def test_parse_line_variants(line: str, watts: float | None) -> None:
    reading = parse_line(line)
    assert reading is not None and reading.card == 3 and reading.watts == watts


def test_parse_line_rejects_junk() -> None:
    assert parse_line("") is None
    assert parse_line("   ") is None
    assert parse_line("index, module_id, power.draw [W]") is None
    assert parse_line("0, 0, 300, extra") is None


def test_command_uses_documented_query_flags() -> None:
    assert hlsmi_command(2) == [
        "hl-smi",
        "--query-aip=index,module_id,power.draw",
        "--format=csv,noheader,nounits",
        "-l",
        "2",
    ]
    assert QUERY_FIELDS[-1] == "power.draw"


def trace(card: int, points: list[tuple[float, float]]) -> list[tuple[float, CardReading]]:
    return [(t, CardReading(index=card, module_id=card, watts=w)) for t, w in points]


def test_constant_power_known_answer() -> None:
    samples = trace(0, [(float(t), 300.0) for t in range(11)])
    assert card_energy(samples, [0], 2.0, 7.0) == pytest.approx(1500.0)


def test_ramp_known_answer_with_interpolated_edges() -> None:
    """100 W -> 200 W linearly over 10 s: trapezoids are exact for a ramp."""
    samples = trace(0, [(float(t), 100.0 + 10.0 * t) for t in range(11)])
    assert card_energy(samples, [0], 0.0, 10.0) == pytest.approx(1500.0)
    assert card_energy(samples, [0], 2.5, 7.5) == pytest.approx(5 * 150.0)
    assert integrate_energy([(t, r.watts or 0.0) for t, r in samples], 2.5, 7.5) == pytest.approx(
        750.0
    )


def test_energy_sums_wanted_cards_only() -> None:
    samples = trace(0, [(0.0, 300.0), (10.0, 300.0)]) + trace(1, [(0.0, 100.0), (10.0, 100.0)])
    samples += trace(7, [(0.0, 999.0), (10.0, 999.0)])
    assert card_energy(samples, [0, 1], 0.0, 10.0) == pytest.approx(4000.0)
    assert card_energy(samples, None, 0.0, 10.0) == pytest.approx(13990.0)


def test_energy_unknown_when_a_wanted_card_never_reported() -> None:
    samples = trace(0, [(0.0, 300.0), (10.0, 300.0)])
    assert card_energy(samples, [0, 1], 0.0, 10.0) is None
    assert card_energy([], None, 0.0, 10.0) is None
    assert card_energy(samples, [0], 5.0, 5.0) is None  # empty window


def test_energy_from_recorded_sample_skips_gaps() -> None:
    one = [(float(i), r) for i, r in enumerate(read("one_card.csv"))]
    # (312+318)/2 + (318+421)/2 + (421+415)/2 over three 1 s intervals
    assert card_energy(one, [0], 0.0, 3.0) == pytest.approx(1102.5)
    missing = [(float(i // 2), r) for i, r in enumerate(read("missing_field.csv"))]
    # card 5 reported N/A at t=0; its trace starts at t=2 and is held before
    assert card_energy(missing, [5], 2.0, 3.0) == pytest.approx((298 + 301) / 2)


def test_cards_in_use() -> None:
    assert cards_in_use({"HABANA_VISIBLE_MODULES": "4,5"}, list(range(8)), 2) == [4, 5]
    assert cards_in_use({}, [3], 1) == [3]
    assert cards_in_use({}, list(range(8)), 8) == list(range(8))
    assert cards_in_use({}, list(range(8)), 1) is None  # other runs may share the node
    assert cards_in_use({"HABANA_VISIBLE_MODULES": "x"}, [0], 1) is None


STAND_IN = """#!/bin/sh
# Stand-in for hl-smi: records its arguments, answers like the real tool.
echo "$@" >> "{log}"
case "$*" in
  *driver_version*) echo "1.24.0-fw-57.1.0"; exit 0 ;;
  *"-l"*) while true; do echo "0, 4, 300"; echo "1, 5, 100"; echo; sleep 0.02; done ;;
  *) echo "0, 4"; echo "1, 5"; exit 0 ;;
esac
"""


@pytest.fixture
def fake_hlsmi(tmp_path: Path) -> tuple[Path, Path]:
    exe = tmp_path / "hl-smi"
    log = tmp_path / "calls.log"
    exe.write_text(STAND_IN.format(log=log))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe, log


def test_sampler_integrates_the_window(fake_hlsmi: tuple[Path, Path]) -> None:
    exe, log = fake_hlsmi
    sampler = HlSmiSampler([4], interval_s=1, exe=str(exe))
    outer0 = time.perf_counter()
    sampler.start()
    time.sleep(0.5)
    energy = sampler.stop()
    outer = time.perf_counter() - outer0
    assert energy is not None
    assert 300 * 0.5 <= energy <= 300 * outer + 1e-6  # card 4 only, 300 W
    assert sampler._proc is not None and sampler._proc.poll() is not None  # hl-smi was stopped
    assert (
        "--query-aip=index,module_id,power.draw --format=csv,noheader,nounits -l 1"
        in log.read_text()
    )


def test_cards_and_driver_from_hlsmi(
    fake_hlsmi: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    exe, _ = fake_hlsmi
    assert visible_cards(str(exe)) == [4, 5]
    assert driver_version(str(exe)) == "1.24.0-fw-57.1.0"
    monkeypatch.delenv("HABANA_VISIBLE_MODULES", raising=False)
    assert hlsmi_sampler(2, exe=str(exe)) is not None  # two cards visible, two used
    assert hlsmi_sampler(1, exe=str(exe)) is None  # which of the two? unknowable
    monkeypatch.setenv("HABANA_VISIBLE_MODULES", "5")
    sampler = hlsmi_sampler(1, exe=str(exe))
    assert isinstance(sampler, HlSmiSampler) and sampler.cards == [5]


def test_no_hlsmi_no_sampler(tmp_path: Path) -> None:
    assert hlsmi_sampler(1, exe=str(tmp_path / "missing-hl-smi")) is None
    assert visible_cards(str(tmp_path / "missing-hl-smi")) == []
    assert driver_version(str(tmp_path / "missing-hl-smi")) is None
