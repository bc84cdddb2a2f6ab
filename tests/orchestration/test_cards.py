"""Card leases: each benchmark task of a Gaudi worker gets cards of its own.

Leases are flocks held by processes, so they are tested with real processes:
a lease held by another process is respected, and released when it exits.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.errors import ConfigError, DeviceError
from bench.orchestration.cards import cards_for, lease, parse_modules
from tests.conftest import REPO

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from bench.orchestration.cards import lease
with lease(1, [0, 1], Path({locks!r})) as cards:
    print(cards[0], flush=True)
    time.sleep(30)
"""


def test_module_lists() -> None:
    assert parse_modules("0-3,6") == [0, 1, 2, 3, 6]
    assert parse_modules(" 5 , 2,2 ") == [2, 5]
    for bad in ("a-b", "3-1", "-1"):
        with pytest.raises(ConfigError, match="BENCH_HPU_MODULES"):
            parse_modules(bad)


def test_a_card_held_by_another_process_is_not_handed_out(tmp_path: Path) -> None:
    locks = tmp_path / "cards"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(repo=str(REPO), locks=str(locks))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline())
        with lease(1, [0, 1], locks) as mine:
            assert mine == [1 - held]
            with (
                pytest.raises(DeviceError, match="no 1 free Gaudi card"),
                lease(1, [0, 1], locks, wait_s=0.3, poll_s=0.1),
            ):
                pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with lease(2, [0, 1], locks, wait_s=5) as both:  # the kernel dropped the dead holder's lock
        assert both == [0, 1]


def test_children_see_their_cards_only_on_hpu_with_a_list(tmp_path: Path) -> None:
    with cards_for("hpu", 2, {"BENCH_HPU_MODULES": "0-7"}, tmp_path) as env:
        assert env == {"HABANA_VISIBLE_MODULES": "0,1"}
        with cards_for("hpu", 1, {"BENCH_HPU_MODULES": "0-7"}, tmp_path) as other:
            assert other == {"HABANA_VISIBLE_MODULES": "2"}
    with cards_for("hpu", 1, {}, tmp_path) as env:
        assert env == {}
    with cards_for("cpu", 1, {"BENCH_HPU_MODULES": "0-7"}, tmp_path) as env:
        assert env == {}
    with (
        pytest.raises(ConfigError, match="9 cards wanted but BENCH_HPU_MODULES lists 8"),
        cards_for("hpu", 9, {"BENCH_HPU_MODULES": "0-7"}, tmp_path),
    ):
        pass
