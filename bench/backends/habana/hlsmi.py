"""Gaudi power through ``hl-smi``, the Habana system management tool.

One long-lived ``hl-smi --query-aip=... --format=csv,noheader,nounits -l N``
process prints one CSV line per card every N seconds (``-l``/``--loop`` takes
whole seconds in Habana's documentation). A reader thread stamps each line
with the host clock when it arrives (hl-smi's own ``timestamp`` field is not
queried: its format is undocumented and the measured window is on the host
clock anyway); :func:`card_energy` integrates each card's trace over the
window and sums the cards this run uses.

Parsing is a pure function over text so it is tested on recorded samples:
units may be present or not (``350 W``), fields may read ``N/A``, lines may
be blank, and a header may appear when ``noheader`` is not honoured.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.power import PowerSampler, integrate_energy
from bench.power.hlml import cards_in_use

log = logging.getLogger(__name__)

#: Fields queried, in order. ``module_id`` is what HABANA_VISIBLE_MODULES names.
QUERY_FIELDS: tuple[str, ...] = ("index", "module_id", "power.draw")

_MISSING = {"", "n/a", "[n/a]", "na", "[not supported]", "not supported", "unknown", "-"}


def hlsmi_command(
    interval_s: int = 1, fields: Sequence[str] = QUERY_FIELDS, exe: str = "hl-smi"
) -> list[str]:
    return [
        exe,
        f"--query-aip={','.join(fields)}",
        "--format=csv,noheader,nounits",
        "-l",
        str(interval_s),
    ]


@dataclass(frozen=True, slots=True)
class CardReading:
    """One line of hl-smi output: one card at one moment."""

    index: int | None
    module_id: int | None
    watts: float | None

    @property
    def card(self) -> int | None:
        """Cards are told apart by module id (stable across containers), else index."""
        return self.module_id if self.module_id is not None else self.index


def _number(text: str) -> float | None:
    value = text.strip().strip('"').strip()
    if value.lower() in _MISSING:
        return None
    for unit in ("mW", "W", "MiB", "%"):
        if value.endswith(unit):
            value = value[: -len(unit)].strip()
            break
    try:
        return float(value)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    number = _number(text)
    return int(number) if number is not None and number.is_integer() else None


def parse_line(line: str, fields: Sequence[str] = QUERY_FIELDS) -> CardReading | None:
    """One CSV line -> a reading; None for blank, header or malformed lines."""
    if not line.strip():
        return None
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != len(fields):
        return None
    row = dict(zip(fields, parts, strict=True))
    if "power.draw" in row and row["power.draw"].lower().startswith("power.draw"):
        return None  # a header line
    watts = _number(row.get("power.draw", ""))
    if watts is not None and row.get("power.draw", "").strip().endswith("mW"):
        watts /= 1000.0
    return CardReading(
        index=_int(row.get("index", "")),
        module_id=_int(row.get("module_id", "")),
        watts=watts,
    )


def parse_output(text: str, fields: Sequence[str] = QUERY_FIELDS) -> list[CardReading]:
    """All readable lines of an hl-smi CSV output, in order."""
    return [r for r in (parse_line(line, fields) for line in text.splitlines()) if r is not None]


def card_energy(
    samples: Iterable[tuple[float, CardReading]],
    cards: Iterable[int] | None,
    start: float,
    stop: float,
) -> float | None:
    """Joules used by ``cards`` over ``[start, stop]`` (host-clock samples).

    Each card is integrated separately (trapezoids, see
    :func:`bench.power.integrate_energy`) and the results summed. Readings
    without a number leave a gap. None when a wanted card has no reading at
    all: a partial sum would understate the energy, and unknown is not zero.
    ``cards=None`` means every card that reported.
    """
    traces: dict[int, list[tuple[float, float]]] = {}
    for t, reading in samples:
        card = reading.card
        if card is None or reading.watts is None:
            continue
        traces.setdefault(card, []).append((t, reading.watts))
    wanted = sorted(traces) if cards is None else sorted(set(cards))
    if not wanted:
        return None
    total = 0.0
    for card in wanted:
        energy = integrate_energy(traces.get(card, []), start, stop)
        if energy is None:
            return None
        total += energy
    return total


class HlSmiSampler:
    """Runs hl-smi in loop mode for the measured window (a PowerSampler)."""

    def __init__(
        self,
        cards: Sequence[int] | None,
        interval_s: int = 1,
        exe: str = "hl-smi",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cards = None if cards is None else list(cards)
        self._cmd = hlsmi_command(interval_s, exe=exe)
        self._clock = clock
        self._samples: list[tuple[float, CardReading]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = self._clock()
            reading = parse_line(line)
            if reading is not None:
                self._samples.append((now, reading))

    def start(self) -> None:
        self._samples.clear()
        env = {**os.environ, "ENABLE_CONSOLE": os.environ.get("ENABLE_CONSOLE", "true")}
        self._proc = subprocess.Popen(
            self._cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )
        self._thread = threading.Thread(
            target=self._read, args=(self._proc,), name="hl-smi", daemon=True
        )
        self._thread.start()
        self._t0 = self._clock()

    def stop(self) -> float | None:
        t1 = self._clock()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return card_energy(list(self._samples), self.cards, self._t0, t1)


def _run(args: list[str], timeout: float = 10) -> str | None:
    exe = shutil.which(args[0])
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env={**os.environ, "ENABLE_CONSOLE": "true"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def visible_cards(exe: str = "hl-smi") -> list[int]:
    """Module ids of the cards hl-smi reports here (empty if it cannot run)."""
    fields = ("index", "module_id")
    out = _run([exe, f"--query-aip={','.join(fields)}", "--format=csv,noheader,nounits"])
    readings = [] if out is None else [parse_line(line, fields) for line in out.splitlines()]
    return sorted({r.card for r in readings if r is not None and r.card is not None})


def driver_version(exe: str = "hl-smi") -> str | None:
    out = _run([exe, "--query-aip=driver_version", "--format=csv,noheader"])
    if not out:
        return None
    first = next((line.strip() for line in out.splitlines() if line.strip()), "")
    return first or None


def hlsmi_sampler(world_size: int, interval_s: int = 1, exe: str = "hl-smi") -> PowerSampler | None:
    """A sampler for this run's cards, or None (no hl-smi, or cards unknowable)."""
    if shutil.which(exe) is None:
        log.info("no %s on PATH: energy is not measured", exe)
        return None
    cards = cards_in_use(os.environ, visible_cards(exe), world_size)
    if cards is None:
        log.warning(
            "energy not measured: cannot tell which Gaudi cards this run uses "
            "(set HABANA_VISIBLE_MODULES, see docs/gaudi.md)"
        )
        return None
    return HlSmiSampler(cards, interval_s=interval_s, exe=exe)
