"""The HTML reports on disk: ``$BENCH_HOME/reports/<dag_id>/<run>.html``.

The ``report`` task writes one per campaign (``bench.orchestration.tasks.report_path``:
both parts reduced to letters, digits and ``-_.``); the Benchmarks page lists
them and serves them at ``/benchmarks/reports/<dag_id>/<run>.html``. Names
come from a URL, so a name is accepted only in that reduced form, never
hidden (a dot first: the writer's temporary files), never through a
symbolic link: a request can reach a regular ``.html`` file directly under a
DAG's folder of the reports folder, and nothing else.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: A path segment as the report task writes it (``_safe``): no separator, no
#: leading dot, so no ``..``, no hidden or temporary file.
_SEGMENT = re.compile(r"[\w\-][\w.\-]{0,254}")
SUFFIX = ".html"


@dataclass(frozen=True)
class ReportFile:
    """One campaign's report as the page lists it."""

    dag_id: str
    name: str  # <run>.html
    modified: datetime
    size: int

    @property
    def run(self) -> str:
        return self.name.removesuffix(SUFFIX)

    @property
    def url_path(self) -> str:
        """Below the page's mount point: ``reports/<dag_id>/<run>.html``."""
        return f"reports/{self.dag_id}/{self.name}"


def _valid(segment: str) -> bool:
    return _SEGMENT.fullmatch(segment) is not None


def _regular(path: Path) -> os.stat_result | None:
    """``path``'s status when it is a regular file or directory reached
    without following a symbolic link at its last step; else None."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return st if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else None


def find_report(root: Path, dag_id: str, name: str) -> Path | None:
    """The report file ``root/dag_id/name``, or None when the names are not
    of the reduced form, do not end in ``.html``, or lead anywhere but to a
    regular file (a symbolic link, a folder, nothing)."""
    if not (_valid(dag_id) and _valid(name) and name.endswith(SUFFIX)):
        return None
    folder = _regular(root / dag_id)
    if folder is None or not stat.S_ISDIR(folder.st_mode):
        return None
    path = root / dag_id / name
    st = _regular(path)
    return path if st is not None and stat.S_ISREG(st.st_mode) else None


def list_reports(
    root: Path, *, dag_id: str | None = None, last: int | None = None
) -> list[ReportFile]:
    """The reports under ``root`` (of one DAG, or all), newest first, at most ``last``."""
    try:
        folders = [dag_id] if dag_id else sorted(os.listdir(root))
    except OSError:  # no report written yet
        return []
    found = []
    for folder in folders:
        if not _valid(folder) or _regular(root / folder) is None:
            continue
        try:
            names = os.listdir(root / folder)
        except OSError:
            continue
        for name in names:
            if find_report(root, folder, name) is None:
                continue
            st = os.lstat(root / folder / name)
            found.append(
                ReportFile(
                    dag_id=folder,
                    name=name,
                    modified=datetime.fromtimestamp(st.st_mtime, timezone.utc),
                    size=st.st_size,
                )
            )
    found.sort(key=lambda r: (r.modified, r.dag_id, r.name), reverse=True)
    return found[:last] if last is not None else found
