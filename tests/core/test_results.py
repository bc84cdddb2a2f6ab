"""The JSONL result format: round trip, atomic write, truncation detected."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.core.config import RunConfig
from bench.core.metrics import request_result, summarize
from bench.core.records import RequestRecord, output_digest, run_output_digest
from bench.core.results import CampaignRef, RunResult, read_jsonl, write_jsonl
from bench.errors import ResultFileError


def make_result(status: str = "ok", *, keep_outputs: bool = True) -> RunResult:
    recs = [
        RequestRecord(
            i,
            f"sha{i}",
            5,
            3,
            0.0,
            (0.01 * (i + 1), 0.02 * (i + 1), 0.03 * (i + 1)),
            output_token_ids=(7 + i, 8, 2**31 + i),
        )
        for i in range(3)
    ]
    requests = tuple(request_result(r, keep_outputs=keep_outputs) for r in recs)
    now = datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)
    return RunResult(
        run_uid="u1",
        config=RunConfig(model="x'); DROP TABLE run; --", device="cpu", precision="fp32"),
        fingerprint="f" * 64,
        status=status,
        started_at=now,
        finished_at=now,
        campaign=CampaignRef(dag_run_id="cli__u1"),
        prompt_set={"name": "default", "sha": "s", "n_prompts": 200, "n_requests": 3},
        environment={"host": "h", "fingerprint": "e"},
        metrics=summarize(requests, duration_s=1.0),
        requests=requests,
    )


def test_round_trip(tmp_path: Path) -> None:
    result = make_result()
    path = write_jsonl(result, tmp_path / "sub" / "r.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and '"kind":"summary"' in lines[-1]
    assert read_jsonl(path) == result
    assert not list(path.parent.glob(".*tmp"))


def test_truncated_or_garbled_files_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(make_result(), tmp_path / "r.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ResultFileError, match="no summary line"):
        read_jsonl(path)
    path.write_text(lines[0] + "\n{oops\n" + lines[-1] + "\n")
    with pytest.raises(ResultFileError, match=r"r.jsonl:2"):
        read_jsonl(path)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown run status"):
        make_result(status="meh")


def test_outputs_round_trip_and_no_outputs_keeps_only_digests(tmp_path: Path) -> None:
    kept = read_jsonl(write_jsonl(make_result(), tmp_path / "kept.jsonl"))
    assert [r.output_token_ids for r in kept.requests] == [(7 + i, 8, 2**31 + i) for i in range(3)]
    assert [r.output_sha for r in kept.requests] == [
        output_digest((7 + i, 8, 2**31 + i)) for i in range(3)
    ]
    bare = read_jsonl(write_jsonl(make_result(keep_outputs=False), tmp_path / "bare.jsonl"))
    assert all(r.output_token_ids is None and r.output_text is None for r in bare.requests)
    assert '"output_token_ids":null' in (tmp_path / "bare.jsonl").read_text()
    digests = [[r.output_sha for r in res.requests] for res in (kept, bare)]
    assert digests[0] == digests[1]  # the digests stay: drift is still detected
    assert run_output_digest(digests[0]) == run_output_digest(digests[1]) is not None
    # a failed request has no output: its digest is None and counts as zeros in the run's
    failed = request_result(RequestRecord(0, "s", 5, 0, 0.0, (), success=False, error="boom"))
    assert failed.output_sha is None
    assert run_output_digest([None, digests[0][0]]) != run_output_digest([digests[0][0]])


def test_the_attempt_travels_in_the_file_and_older_files_have_none(tmp_path: Path) -> None:
    retried = dataclasses.replace(make_result(), attempt=2)
    path = write_jsonl(retried, tmp_path / "r.jsonl")
    assert read_jsonl(path).attempt == 2
    # a file written before attempts were recorded: which try it was is not known
    lines = path.read_text().splitlines()
    summary = json.loads(lines[-1])
    del summary["attempt"]
    path.write_text("\n".join([*lines[:-1], json.dumps(summary)]) + "\n")
    assert read_jsonl(path).attempt is None
    with pytest.raises(ValueError, match="counts from 1"):
        dataclasses.replace(retried, attempt=0)
