"""Reports on disk: listed newest first; a URL reaches a report file and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.report.files import find_report, list_reports

RUN = "scheduled__2026-03-01T02_00_00_00_00.html"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """reports/<dag>/<run>.html as the report task writes them, plus things
    a request must never reach."""
    reports = tmp_path / "reports"
    for i, (dag, name) in enumerate(
        [
            ("llm_bench_nightly", RUN),
            ("llm_bench_nightly", "scheduled__2026-03-02T02_00_00_00_00.html"),
            ("llm_bench_smoke", "manual__2026-03-02T10_00_00.html"),
        ]
    ):
        (reports / dag).mkdir(parents=True, exist_ok=True)
        (reports / dag / name).write_text(f"<html>{name}</html>")
        os.utime(reports / dag / name, (1_800_000_000 + i, 1_800_000_000 + i))
    secret = tmp_path / "secret.html"
    secret.write_text("password")
    (reports / "llm_bench_nightly" / "linked.html").symlink_to(secret)
    (reports / "linked_dag").symlink_to(tmp_path)
    (reports / "llm_bench_nightly" / ".run.html.x1y2.tmp").write_text("half written")
    (reports / "llm_bench_nightly" / ".hidden.html").write_text("hidden")
    (reports / "llm_bench_nightly" / "notes.txt").write_text("not a report")
    (reports / "llm_bench_nightly" / "folder.html").mkdir()
    return reports


def test_reports_are_listed_newest_first(root: Path) -> None:
    listed = list_reports(root)
    assert [(r.dag_id, r.name) for r in listed] == [
        ("llm_bench_smoke", "manual__2026-03-02T10_00_00.html"),
        ("llm_bench_nightly", "scheduled__2026-03-02T02_00_00_00_00.html"),
        ("llm_bench_nightly", RUN),
    ]
    assert listed[-1].url_path == f"reports/llm_bench_nightly/{RUN}"
    assert listed[-1].run == RUN.removesuffix(".html") and listed[-1].size > 0
    assert [r.name for r in list_reports(root, dag_id="llm_bench_smoke")] == [
        "manual__2026-03-02T10_00_00.html"
    ]
    assert len(list_reports(root, last=1)) == 1
    assert list_reports(root.parent / "nothing-yet") == []


def test_a_report_is_found(root: Path) -> None:
    assert find_report(root, "llm_bench_nightly", RUN) == root / "llm_bench_nightly" / RUN


@pytest.mark.parametrize(
    ("dag_id", "name"),
    [
        ("..", "secret.html"),
        ("llm_bench_nightly", "../../secret.html"),
        ("llm_bench_nightly", "..%2f..%2fsecret.html"),
        ("llm_bench_nightly/../..", "secret.html"),
        ("/", "etc/passwd"),
        (str(Path("/tmp")), "x.html"),
        ("llm_bench_nightly", "linked.html"),  # a symbolic link out of the folder
        ("linked_dag", "secret.html"),  # a DAG folder that is a link
        ("llm_bench_nightly", ".hidden.html"),
        ("llm_bench_nightly", ".run.html.x1y2.tmp"),
        ("llm_bench_nightly", "notes.txt"),
        ("llm_bench_nightly", "folder.html"),
        ("llm_bench_nightly", "missing.html"),
        ("llm_bench_nightly", RUN + "\x00.txt"),
        ("llm_bench_nightly", "a" * 300 + ".html"),
        ("", RUN),
        (".", RUN),
    ],
)
def test_nothing_else_is_reachable(root: Path, dag_id: str, name: str) -> None:
    assert find_report(root, dag_id, name) is None
