"""The openai backend against a scripted streaming server (tests/backends/openai_stub.py).

The stub runs in its own process and sends each chunk at a scripted offset
from the request's arrival, so the timings asserted here are the script's,
measured through a real socket, HTTP/1.1 chunked encoding and SSE framing.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.backends.base import Request
from bench.backends.openai.backend import OpenAIBackend
from bench.backends.openai.endpoints import ENDPOINTS
from bench.backends.openai.loadgen import arrival_offsets
from bench.backends.openai.options import api_base, load_shape, redact_url
from bench.backends.openai.payload import Body, effective_config
from bench.backends.openai.sse import SSEDecoder
from bench.core.config import RunConfig
from bench.core.metrics import request_result
from bench.core.prompts import Prompt
from bench.core.records import RequestRecord, RequestResult, output_digest
from bench.errors import ConfigError, ModelLoadError
from bench.runner import prepare, run_benchmark
from tests.backends.openai_stub import (
    ITL_SLACK_MS,
    ONE_VALUE_SLACK_MS,
    SCRIPT,
    TTFT_SLACK_MS,
    fetch_log,
    run_stub,
    script_prompt,
)


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with run_stub(key="sekret") as url:
        yield url


def make_config(url: str, **kw: Any) -> RunConfig:
    options = {"base_url": url + "/v1", "tokenizer": "none", **kw.pop("options", {})}
    base: dict[str, Any] = {
        "model": "stub",
        "backend": "openai",
        "device": "cpu",
        "precision": "fp32",
    }
    return RunConfig(**{**base, **kw, "options": options})


def execute(config: RunConfig, prompts: list[str]) -> list[RequestRecord]:
    backend = OpenAIBackend(config)
    try:
        backend.load()
        requests = [Request(i, Prompt(text=p)) for i, p in enumerate(prompts)]
        backend.check(requests)
        return backend.execute(requests, lambda n: None)
    finally:
        backend.close()


def results(config: RunConfig, prompts: list[str]) -> list[RequestResult]:
    return [request_result(r) for r in execute(config, prompts)]


def is_scripted(entry: dict[str, Any]) -> bool:
    """A logged request that carried a script (not the backend's probe)."""
    return "SCRIPT:" in str(entry["body"])


def max_in_flight(records: list[RequestRecord]) -> int:
    events = sorted([(r.t_send, 1) for r in records] + [(r.token_times[-1], -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


# -- SSE framing ---------------------------------------------------------------------------


def test_sse_decoder_reassembles_events_across_reads() -> None:
    dec = SSEDecoder()
    assert dec.feed('data: {"a":') == []
    assert dec.feed(" 1}\n\ndata: [DONE]\n") == ['{"a": 1}']
    assert dec.feed("\n") == ["[DONE]"]
    assert dec.feed(": keep-alive comment\n\nevent: ping\n\n") == []
    assert dec.feed('data:{"no":"space"}\n\n') == ['{"no":"space"}']
    assert dec.feed("data: line1\ndata: line2\n\n") == ["line1\nline2"]


def test_sse_decoder_accepts_crlf_even_split_between_reads() -> None:
    dec = SSEDecoder()
    assert dec.feed("data: x\r\n\r") == []
    assert dec.feed("\ndata: y\r\n\r\n") == ["x", "y"]
    # A trailing CR may be half of a CRLF: the event completes with the next read.
    assert dec.feed("data: z\r\r") == []
    assert dec.feed("data: w\r\r\n") == ["z", "w"]


def test_sse_decoder_flushes_an_unterminated_last_event() -> None:
    dec = SSEDecoder()
    assert dec.feed('data: {"error": "kaput"}') == []
    assert dec.flush() == ['{"error": "kaput"}']
    assert dec.flush() == []


# -- timing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_token_times_are_when_the_server_sent_content(stub: str, endpoint: str) -> None:
    """Each token time is the arrival of a content chunk: compared with the
    stub's own send stamps (same monotonic clock), not with the script, so
    this measures the client's error alone."""
    marker = f"stamp-{uuid.uuid4().hex}"
    steps = [{"at": 0.0, "role": True}, {"at": 0.05, "empty": True}]
    steps += [{"at": 0.06 + 0.01 * i, "text": f"t{i}"} for i in range(10)] + [
        {"at": 0.16, "done": True}
    ]
    config = make_config(stub, options={"endpoint": endpoint, "served_model": marker})
    [record] = execute(config, [script_prompt(steps)])
    [entry] = [e for e in fetch_log(stub) if e["body"]["model"] == marker and is_scripted(e)]
    assert record.success and len(record.token_times) == len(entry["sent"]) == 10
    lag_ms = [
        (got - sent) * 1e3 for got, sent in zip(record.token_times, entry["sent"], strict=True)
    ]
    assert all(lag > 0 for lag in lag_ms)  # never before the chunk left the server
    assert float(np.median(lag_ms)) < 2.0
    assert max(lag_ms) < ONE_VALUE_SLACK_MS


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_ttft_starts_at_the_first_content_chunk(stub: str, endpoint: str) -> None:
    """The role-only chunk (t=0) and the empty delta (t=50 ms) are not tokens:
    TTFT is the 100 ms of the script, not the ~1 ms a naive client reports."""
    [r] = results(make_config(stub, options={"endpoint": endpoint}), [script_prompt(SCRIPT)])
    assert r.success, r.error
    assert r.output_tokens == 3 and r.input_tokens == 7  # from the usage chunk
    assert r.ttft_ms is not None and r.e2e_ms is not None and r.tpot_ms is not None
    assert 100.0 <= r.ttft_ms <= 100.0 + TTFT_SLACK_MS
    assert r.itl_ms == pytest.approx([30.0, 30.0], abs=ONE_VALUE_SLACK_MS)
    assert 160.0 <= r.e2e_ms <= 160.0 + TTFT_SLACK_MS
    assert r.tpot_ms == pytest.approx(30.0, abs=ITL_SLACK_MS)  # (last - first) / 2
    assert r.e2e_ms - r.ttft_ms == pytest.approx(sum(r.itl_ms), abs=1e-6)


def test_a_stream_whose_text_arrives_in_one_read_has_no_tpot(stub: str) -> None:
    """Three tokens in one write: one arrival, no gap observed. TPOT is
    unknown (null), not 0.0, which would halve a TPOT p50."""
    steps = [
        {"at": 0.0, "role": True},
        {"at": 0.05, "texts": ["a", "b", "c"]},
        {"at": 0.05, "usage": [5, 3]},
        {"at": 0.05, "done": True},
    ]
    [r] = results(make_config(stub), [script_prompt(steps)])
    assert r.success and r.output_tokens == 3
    assert r.tpot_ms is None and r.itl_ms == ()
    assert r.ttft_ms == r.e2e_ms and r.ttft_ms is not None and r.ttft_ms >= 50.0


def test_events_that_arrive_in_one_read_are_one_chunk(stub: str) -> None:
    """A server whose writes coalesce (transformers serve 5.x) delivers
    several events in one read: the client saw one arrival, so ITL has one
    gap per pair of reads and never a 0.00 ms gap that is no token's time."""
    steps = [
        {"at": 0.0, "role": True},
        {"at": 0.05, "texts": ["a", "b"]},
        {"at": 0.08, "texts": ["c", "d", "e"]},
        {"at": 0.08, "usage": [5, 5]},
        {"at": 0.08, "done": True},
    ]
    [record] = execute(make_config(stub), [script_prompt(steps)])
    r = request_result(record)
    assert r.output_tokens == 5 and len(record.token_times) == 2
    assert r.itl_ms == pytest.approx([30.0], abs=ONE_VALUE_SLACK_MS)
    assert r.tpot_ms == pytest.approx(30.0 / 4, abs=ONE_VALUE_SLACK_MS / 4)


def test_failures_become_records_not_exceptions(stub: str) -> None:
    role, tok = {"at": 0.0, "role": True}, {"at": 0.02, "text": "a"}
    scripts = {
        "429": [{"status": 429, "body": {"error": {"message": "slow down", "type": "rate_limit"}}}],
        "500": [{"status": 500, "body": {"detail": "engine died"}}],
        "error event": [role, tok, {"at": 0.04, "error": "boom"}],
        "unterminated error": [role, tok, {"at": 0.04, "raw": 'data: {"error": "kaput"}'}],
        "dropped": [role, tok, {"at": 0.04, "abort": True}],
        "hang": [role, tok, {"at": 0.04, "hang": True}],
        "no content": [
            role,
            {"at": 0.01, "empty": True},
            {"at": 0.02, "usage": [5, 0]},
            {"at": 0.02, "done": True},
        ],
        "malformed": [role, {"at": 0.01, "raw": "data: {not json\n\n"}],
        "ok": [role, tok, {"at": 0.03, "text": "b"}, {"at": 0.03, "done": True}],
    }
    config = make_config(stub, concurrency=len(scripts), options={"request_timeout_s": 0.5})
    started = time.perf_counter()
    records = execute(config, [script_prompt(s) for s in scripts.values()])
    elapsed = time.perf_counter() - started
    by_name = dict(zip(scripts, records, strict=True))
    assert [r.request_index for r in records] == list(range(len(scripts)))
    assert (
        by_name["ok"].success and by_name["ok"].error is None and by_name["ok"].output_tokens == 2
    )
    failed = {name: r.error or "" for name, r in by_name.items() if not r.success}
    assert set(failed) == set(scripts) - {"ok"}
    assert failed["429"] == "HTTP 429: slow down"
    assert failed["500"] == "HTTP 500: engine died"
    assert failed["error event"] == "error event mid-stream: boom"
    assert failed["unterminated error"] == "error event mid-stream: kaput"
    assert failed["dropped"].startswith("ClientPayloadError")
    assert failed["hang"] == "timeout: response not complete after 0.5 s"
    assert failed["no content"] == "the stream carried no content"
    assert failed["malformed"].startswith("malformed stream event")
    # Tokens that arrived before a failure are kept (the record says what happened).
    assert len(by_name["hang"].token_times) == 1
    assert 0.5 <= elapsed < 2.0  # the hang cost the timeout, not the server's hour


def test_timeout_covers_a_server_that_never_answers(stub: str) -> None:
    [r] = results(
        make_config(stub, options={"request_timeout_s": 0.3}),
        [script_prompt([{"at": 0.0, "hang": True}])],
    )
    assert not r.success and r.error == "timeout: response not complete after 0.3 s"
    assert r.ttft_ms is None


# -- token counts and request bodies ----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_without_usage_tokens_are_counted_with_the_tokenizer(
    stub: str, tiny_model: Path, endpoint: str
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    steps = [
        {"at": 0.0, "role": True},
        {"at": 0.01, "text": "What is the"},
        {"at": 0.02, "text": " capital of France?"},
        {"at": 0.02, "done": True},
    ]
    prompt = script_prompt(steps)
    options = {"endpoint": endpoint, "tokenizer": str(tiny_model)}
    [r] = results(make_config(stub, options=options), [prompt])
    assert r.success, r.error
    expected_out = len(tok("What is the capital of France?", add_special_tokens=False)["input_ids"])
    assert expected_out > 2  # more tokens than chunks: the count is not the chunk count
    assert r.output_tokens == expected_out
    # what it generated is kept: the streamed text, its ids (re-tokenized), the text's digest
    assert r.output_text == "What is the capital of France?"
    assert r.output_token_ids == tuple(
        tok("What is the capital of France?", add_special_tokens=False)["input_ids"]
    )
    assert r.output_sha == output_digest(None, "What is the capital of France?")
    if endpoint == "chat":
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True
        )
        expected_in = len(ids["input_ids"] if isinstance(ids, Mapping) else ids)  # 5.x: a dict
    else:
        expected_in = len(tok(prompt)["input_ids"])
    assert r.input_tokens == expected_in
    # Without a tokenizer, each content chunk counts as one token.
    [r] = results(make_config(stub, options={"endpoint": endpoint}), [prompt])
    assert r.output_tokens == 2 and r.input_tokens == 0
    assert r.output_text == "What is the capital of France?" and r.output_token_ids is None


def test_request_body_and_api_key(
    stub: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STUB_KEY", "sekret")
    marker = f"body-{uuid.uuid4().hex}"
    config = make_config(
        stub,
        max_new_tokens=5,
        options={
            "base_url": stub + "/auth/v1",
            "endpoint": "chat",
            "api_key_env": "STUB_KEY",
            "served_model": "served-name",
            "temperature": 0,
            "extra_body": {"top_k": 1, "seed": 3},
        },
    )
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend(config)
    try:
        backend.load()
        requests = [Request(0, Prompt(text=marker))]
        backend.check(requests)
        [record] = backend.execute(requests, lambda n: None)
        info = backend.info()
    finally:
        backend.close()
    assert record.success and record.output_tokens == 5
    [entry] = [e for e in fetch_log(stub) if marker in str(e["body"])]
    assert entry["path"] == "/auth/v1/chat/completions"
    assert entry["authorization"] == "Bearer sekret"
    assert entry["body"] == {
        "model": "served-name",
        "messages": [{"role": "user", "content": marker}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "min_tokens": 5,
        "temperature": 0.0,
        "top_k": 1,
        "seed": 3,
    }
    assert "sekret" not in caplog.text and "sekret" not in repr(info)
    assert "output token counts from: usage 1" in caplog.text


def test_eos_fields_are_left_out_when_asked(stub: str) -> None:
    marker = f"eos-{uuid.uuid4().hex}"
    results(
        make_config(stub, options={"send_ignore_eos": False, "include_usage": False}),
        [marker + "a"],
    )
    results(make_config(stub, ignore_eos=False), [marker + "b"])
    bodies = {e["body"]["prompt"]: e["body"] for e in fetch_log(stub) if marker in str(e["body"])}
    for body in bodies.values():
        assert "ignore_eos" not in body and "min_tokens" not in body
    assert "stream_options" not in bodies[marker + "a"]
    assert bodies[marker + "b"]["stream_options"] == {"include_usage": True}


def test_outputs_short_of_max_new_tokens_are_flagged(
    stub: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With EOS ignored every output should be max_new_tokens long; a server
    that stops early (doesn't honour ignore_eos) is called out."""
    caplog.set_level(logging.WARNING, logger="bench.backends.openai")
    results(make_config(stub, max_new_tokens=8), [script_prompt(SCRIPT)] * 2)
    assert (
        "2 of 2 requests stopped before the max_tokens they asked for (up to 8) although "
        "ignore_eos/min_tokens were sent" in caplog.text
    )
    caplog.clear()
    results(make_config(stub, max_new_tokens=8, ignore_eos=False), [script_prompt(SCRIPT)])
    results(make_config(stub, max_new_tokens=3), [script_prompt(SCRIPT)])
    assert "stopped before" not in caplog.text


def test_server_usage_wins_and_a_disagreeing_tokenizer_is_reported(
    stub: str, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stub's usage says 5 prompt tokens; the tiny tokenizer's chat
    template makes 9 of "hi". The server's count is recorded, and said."""
    caplog.set_level(logging.INFO, logger="bench.backends.openai")
    config = make_config(
        stub, max_new_tokens=3, options={"endpoint": "chat", "tokenizer": str(tiny_model)}
    )
    backend = OpenAIBackend(config)
    try:
        backend.load()
        requests = [Request(0, Prompt(text="hi"))]
        backend.check(requests)
        [record] = backend.execute(requests, lambda n: None)
        counter = backend.token_counter
    finally:
        backend.close()
    assert record.input_tokens == 5 and record.output_tokens == 3
    # the seam exact-length prompts build on: the count as the server would see it
    assert counter is not None and len(counter.prompt_ids(Prompt(text="hi"))) == 9
    assert (
        "prompt token counts disagree for 1 of 1 requests (server vs tokenizer, e.g. 5 vs 9)"
        in caplog.text
    )
    assert "output token counts from: usage 1" in caplog.text


def test_retokenized_output_counts_stay_within_what_the_stream_proves(
    stub: str, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """16 byte-level tokens that decode to U+FFFD re-tokenize as 48: without
    usage the count is kept at max_tokens (no server exceeds it), loudly."""
    steps = [{"at": 0.0, "role": True}]
    steps += [{"at": 0.005 * (i + 1), "text": "\ufffd"} for i in range(16)]
    steps += [{"at": 0.09, "done": True}]
    options = {"base_url": stub + "/no-usage/v1", "tokenizer": str(tiny_model)}
    [r] = results(make_config(stub, max_new_tokens=16, options=options), [script_prompt(steps)])
    assert r.success and r.output_tokens == 16
    assert (
        "re-tokenizing the streamed text miscounts 1 of 1 requests (e.g. 48 -> 16)" in caplog.text
    )


# -- what the server takes: the probe and the recorded config --------------------------------


def test_the_config_in_effect_follows_the_body_sent() -> None:
    """Offered fields may be dropped; the user's never are; ``ignore_eos``
    is recorded true only while a length field is in the body."""
    chat = ENDPOINTS["chat"]
    config = make_config("http://h:8000", max_new_tokens=5)
    body = Body.for_config(config, "m")
    assert body.offered == {"ignore_eos", "min_tokens", "stream_options"}
    assert effective_config(config, chat, body) == config.replace(
        options={**config.options, "endpoint": "chat"}
    )
    bare = body.without(["ignore_eos", "min_tokens", "stream_options"])
    assert bare.field_names(chat) == ["max_tokens", "messages", "model", "stream"]
    in_effect = effective_config(config, chat, bare)
    assert in_effect.ignore_eos is False and in_effect.options["include_usage"] is False
    assert body.probe().fields["max_tokens"] == body.probe().fields["min_tokens"] == 1
    # A length field the user put in extra_body is theirs: never dropped, and it enforces.
    theirs = make_config("http://h:8000", options={"extra_body": {"min_tokens": 2}})
    kept = Body.for_config(theirs, "m").without(["ignore_eos", "min_tokens"])
    assert kept.fields["min_tokens"] == 2 and effective_config(theirs, chat, kept).ignore_eos
    # send_ignore_eos=false: nothing enforces the length, and the record says so.
    unsent = make_config("http://h:8000", options={"send_ignore_eos": False})
    assert not effective_config(unsent, chat, Body.for_config(unsent, "m")).ignore_eos


def test_auto_endpoint_uses_chat_where_completions_is_missing(stub: str) -> None:
    config = make_config(stub, options={"base_url": stub + "/chat-only/v1"})
    assert config.options.get("endpoint", "auto") == "auto"
    backend = OpenAIBackend(config)
    try:
        backend.load()
        requests = [Request(0, Prompt(text=script_prompt(SCRIPT)))]
        backend.check(requests)
        [record] = backend.execute(requests, lambda n: None)
        info = backend.info()
    finally:
        backend.close()
    assert record.success and len(record.token_times) == 3
    assert backend.config.options["endpoint"] == "chat"
    assert info.extra["url"] == stub + "/chat-only/v1/chat/completions"


@pytest.mark.parametrize(
    ("options", "tail"),
    [
        ({}, "check --base-url (the API root, e.g. http://host:8000/v1) and --served-model"),
        ({"endpoint": "completions"}, "--endpoint auto tries every API"),
    ],
)
def test_no_streaming_endpoint_is_a_one_line_setup_error(
    stub: str, options: dict[str, Any], tail: str
) -> None:
    base = stub + ("/v2" if not options else "/chat-only/v1")
    backend = OpenAIBackend(make_config(stub, options={"base_url": base, **options}))
    with pytest.raises(ModelLoadError) as caught:
        backend.load()
    backend.close()
    message = str(caught.value)
    assert "\n" not in message and tail in message
    if not options:
        assert message.startswith(
            f"no endpoint under {base} streams (/completions: HTTP 404: Not Found; "
            "/chat/completions: HTTP 404: Not Found); "
        )


def test_the_result_records_what_was_sent(
    stub: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Against a server that refuses unknown fields (HTTP 422, like
    transformers serve) and has no /completions: the probe finds chat, drops
    ignore_eos/min_tokens, and the result records the requests as sent."""
    prompts = tmp_path / "plain.txt"
    prompts.write_text("alpha\nbeta\n")
    marker = f"sent-{uuid.uuid4().hex}"
    options = {"base_url": stub + "/strict/chat-only/v1", "served_model": marker}
    config = make_config(
        stub, max_new_tokens=4, limit=4, concurrency=2, prompts=str(prompts), options=options
    )
    assert config.ignore_eos  # asked for: fixed output length
    result = run_benchmark(config)
    assert result.ok, result.error
    recorded = result.config
    assert recorded.ignore_eos is False and recorded.options["endpoint"] == "chat"
    assert "include_usage" not in recorded.options  # stream_options is OpenAI's: accepted
    assert result.environment is not None
    extra = result.environment["extra"]
    assert extra["refused_fields"] == ["ignore_eos", "min_tokens"]
    assert extra["token_counts"] == "server usage"
    sent = [e for e in fetch_log(stub) if e["body"]["model"] == marker]
    probes = [e["body"] for e in sent if e["body"]["max_tokens"] == 1]
    assert [("ignore_eos" in b, "min_tokens" in b) for b in probes] == [
        (True, True),
        (False, False),
    ]
    measured = [e for e in sent if e["body"]["max_tokens"] == 4]
    assert len(measured) == 2 + 4  # a warmup wave of 2, then the run
    for entry in measured:
        assert entry["path"] == "/strict/chat-only/v1/chat/completions"
        assert sorted(entry["body"]) == extra["request_fields"]
    # The same requests configured by hand are the same history.
    by_hand = config.replace(ignore_eos=False, options={**config.options, "endpoint": "chat"})
    assert result.fingerprint == prepare(by_hand).fingerprint
    assert "the server refused ignore_eos, min_tokens" in caplog.text
    assert "output lengths are not enforced (recorded as ignore_eos=false" in caplog.text


def test_a_field_the_user_asked_for_is_never_dropped(stub: str) -> None:
    options = {"base_url": stub + "/strict/v1", "extra_body": {"top_k": 1}}
    backend = OpenAIBackend(make_config(stub, options=options))
    with pytest.raises(ModelLoadError, match=r"/completions: HTTP 422: Unexpected keys .*top_k"):
        backend.load()
    backend.close()


def test_an_endpoints_precision_is_unknown_unless_given() -> None:
    """The client cannot see the server's weights: no bf16 nobody set."""
    options = {"base_url": "http://127.0.0.1:9/v1"}
    config = RunConfig(
        model="org/m", backend="openai", device="cpu", concurrency=2, options=options
    )
    assert config.precision == "unknown" and config.label == "m/unknown/c2"
    given = config.replace(precision="bf16")
    assert given.label == "m/bf16/c2"
    assert RunConfig(model="m").precision == "bf16"  # in process: the dtype it loads
    with pytest.raises(
        ConfigError, match="backend hf supports precision fp32/bf16/fp16, not unknown"
    ):
        RunConfig(model="m", precision="unknown")


# -- load shapes ---------------------------------------------------------------------------


def _slow(seconds: float) -> str:
    return script_prompt(
        [{"at": 0.0, "role": True}, {"at": seconds, "text": "x"}, {"at": seconds, "done": True}]
    )


def test_closed_loop_keeps_exactly_concurrency_requests_in_flight(stub: str) -> None:
    records = execute(make_config(stub, concurrency=4), [_slow(0.2)] * 8)
    assert all(r.success for r in records)
    assert max_in_flight(records) == 4
    starts = sorted(r.t_send - records[0].t_send for r in records)
    assert starts[3] < 0.05 and 0.2 <= starts[4] < 0.28  # the second wave follows the first


def test_open_loop_follows_the_seeded_schedule(stub: str) -> None:
    config = make_config(stub, request_rate=25.0, seed=4)
    records = execute(config, [_slow(0.005)] * 25)
    sends = np.array([r.t_send for r in records])
    offsets = sends - sends[0]
    assert offsets == pytest.approx(arrival_offsets(25, 25.0, seed=4), abs=0.01)


def test_open_loop_is_capped_by_max_concurrency(stub: str) -> None:
    config = make_config(stub, request_rate=200.0, options={"max_concurrency": 2})
    records = execute(config, [_slow(0.1)] * 6)
    assert all(r.success for r in records)
    assert max_in_flight(records) == 2
    span = max(r.token_times[-1] for r in records) - min(r.t_send for r in records)
    assert 0.3 <= span < 0.4  # three waves of two


def test_max_duration_stops_issuing(stub: str) -> None:
    config = make_config(stub, concurrency=1, options={"max_duration_s": 0.25})
    records = execute(config, [_slow(0.1)] * 20)
    assert len(records) == 3  # sent at ~0, ~0.1, ~0.2; the next would start after 0.25 s
    assert all(r.success for r in records)


# -- setup errors ----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_fails_setup() -> None:
    backend = OpenAIBackend(make_config(f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(
        ModelLoadError, match=r"cannot reach the endpoint http://127\.0\.0\.1:\d+/v1/completions"
    ):
        backend.load()
    backend.close()


def test_rejected_credentials_fail_setup(stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_KEY", "wrong")
    backend = OpenAIBackend(
        make_config(stub, options={"base_url": stub + "/auth/v1", "api_key_env": "STUB_KEY"})
    )
    with pytest.raises(
        ConfigError, match=r"refused the credentials \(HTTP 401\); put the API key in \$STUB_KEY"
    ):
        backend.load()
    backend.close()
    monkeypatch.delenv("STUB_KEY")
    backend = OpenAIBackend(make_config(stub, options={"api_key_env": "STUB_KEY"}))
    with pytest.raises(ConfigError, match="STUB_KEY, but that environment variable is not set"):
        backend.load()
    backend.close()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"options": {"base_url": None}}, "needs base_url"),
        ({"options": {"base_url": "ftp://host/v1"}}, "must be an http"),
        ({"options": {"endpoint": "embeddings"}}, "must be one of auto, completions, chat"),
        ({"request_rate": 2.0, "options": {"max_concurrency": 0}}, "must be positive"),
        ({"request_rate": 2.0, "options": {"burstiness": 0}}, "must be positive"),
        ({"options": {"request_timeout_s": -1}}, "must be positive"),
        ({"options": {"extra_body": {"stream": False}}}, "cannot change 'stream'"),
        ({"options": {"base_url_typo": "x"}}, "unknown openai option 'base_url_typo'"),
        ({"batch_size": 2}, "uses concurrency/request_rate"),
    ],
)
def test_bad_options_are_rejected_when_the_config_is_built(kw: dict[str, Any], match: str) -> None:
    options = {"base_url": "http://127.0.0.1:9/v1", **kw.pop("options", {})}
    options = {k: v for k, v in options.items() if v is not None}
    with pytest.raises(ConfigError, match=match):
        RunConfig(
            model="m", backend="openai", device="cpu", precision="fp32", options=options, **kw
        )


def test_load_shape_from_config() -> None:
    """Campaign options are shared by every matrix point: the open-loop knobs
    shape request_rate points and a closed-loop point ignores them."""
    options = {
        "base_url": "http://127.0.0.1:9/v1",
        "max_concurrency": 8,
        "burstiness": 0.5,
        "max_duration_s": 60,
    }
    base = {
        "model": "m",
        "backend": "openai",
        "device": "cpu",
        "precision": "fp32",
        "seed": 3,
        "options": options,
    }
    closed = load_shape(RunConfig(**base, concurrency=4))
    assert (
        closed.open_loop,
        closed.concurrency,
        closed.in_flight_limit,
        closed.max_duration_s,
    ) == (False, 4, 4, 60)
    opened = load_shape(RunConfig(**base, request_rate=2.0))
    assert (opened.request_rate, opened.burstiness, opened.max_concurrency, opened.seed) == (
        2.0,
        0.5,
        8,
        3,
    )
    both = load_shape(RunConfig(**base, request_rate=2.0, concurrency=4))
    assert both.open_loop and both.max_concurrency == 4  # the smaller cap wins
    assert (
        load_shape(RunConfig(**{**base, "options": {"base_url": "http://h/v1"}})).concurrency == 1
    )


def test_url_helpers() -> None:
    assert api_base("http://h:8000") == "http://h:8000/v1"
    assert api_base("http://h:8000/") == "http://h:8000/v1"
    assert api_base("https://h/openai/v1/") == "https://h/openai/v1"
    assert redact_url("http://user:pw@h:8000/v1") == "http://h:8000/v1"
    assert redact_url("http://h/v1") == "http://h/v1"


# -- through the runner ----------------------------------------------------------------------


def test_runner_measures_a_run_against_the_endpoint(stub: str, tmp_path: Path) -> None:
    prompts = tmp_path / "scripted.txt"
    prompts.write_text("\n".join(script_prompt(SCRIPT) for _ in range(3)) + "\n")
    before = len(fetch_log(stub))
    config = make_config(stub, concurrency=2, limit=6, warmup=1, prompts=str(prompts))
    result = run_benchmark(config)
    assert result.ok, result.error
    m = result.metrics
    assert m is not None and m.n_requests == 6 and m.n_failed == 0
    assert m.output_tokens_total == 18 and m.input_tokens_total == 42
    assert m.ttft_p50_ms is not None and 100.0 <= m.ttft_p50_ms <= 100.0 + TTFT_SLACK_MS
    assert m.itl_p50_ms == pytest.approx(30.0, abs=ITL_SLACK_MS)
    assert m.duration_s == pytest.approx(0.48, abs=0.06)  # three waves of 160 ms
    assert len(fetch_log(stub)) - before == 1 + 2 + 6  # the probe, a warmup wave of 2, measured
    assert result.environment is not None
    assert result.environment["device_name"].startswith("endpoint 127.0.0.1:")
    assert result.environment["extra"]["load_shape"] == "closed loop, concurrency 2"
    assert result.environment["runtime_version"] == "0.0.0-stub (/version)"  # the server's own
    assert result.telemetry is not None and result.telemetry["sources"] == ["host"]


def test_device_names_the_servers_hardware(stub: str, tmp_path: Path) -> None:
    """A laptop benchmarks a Gaudi endpoint: --device hpu describes the server
    and is not looked for on the client (which has no habana stack here)."""
    prompts = tmp_path / "one.txt"
    prompts.write_text(script_prompt(SCRIPT) + "\n")
    config = make_config(stub, device="hpu", precision="fp8", warmup=0, prompts=str(prompts))
    result = run_benchmark(config)
    assert result.ok, result.error
    assert result.config.device == "hpu" and result.environment is not None
    assert result.environment["device"] == "hpu"
