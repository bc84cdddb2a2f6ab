"""Campaign parsing, matrix expansion, overrides and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bench.campaign import CampaignError, load_campaign, parse_campaign
from bench.core.fields import UNSET

BASE = {
    "device": "cpu",
    "precisions": ["fp32", "bf16"],
    "batch_sizes": [1, 4, 16],
    "models": [
        {"name": "small", "path": "/m/small"},
        {"name": "big", "max_batch_size": 4, "precisions": ["bf16"]},
    ],
}


def test_matrix_expansion_with_overrides_and_max_batch() -> None:
    c = parse_campaign("t", BASE)
    labels = [cfg.label for cfg in c.configs()]
    assert labels == [
        "small/fp32/bs1",
        "small/fp32/bs4",
        "small/fp32/bs16",
        "small/bf16/bs1",
        "small/bf16/bs4",
        "small/bf16/bs16",
        "big/bf16/bs1",
        "big/bf16/bs4",
    ]
    first = c.configs()[0]
    assert first.model_path == "/m/small" and first.device == "cpu" and first.ignore_eos
    assert c.dag_id == "llm_bench_t"


def test_exclusions_and_option_merging() -> None:
    data = {
        **BASE,
        "options": {"do_sample": False, "top_k": 3},
        "exclude": [{"model": "small", "batch_size": 16}, {"precision": "fp32", "batch_size": 4}],
    }
    data["models"] = [{**BASE["models"][0], "options": {"top_k": 7}}, BASE["models"][1]]
    configs = parse_campaign("t", data).configs()
    labels = {c.label for c in configs}
    assert "small/bf16/bs16" not in labels and "small/fp32/bs4" not in labels
    assert "small/bf16/bs4" in labels
    assert dict(configs[0].options) == {"do_sample": False, "top_k": 7}


def test_trigger_overrides_select_and_filter() -> None:
    c = parse_campaign("t", BASE)
    o = c.with_overrides(
        {"models": ["big"], "precisions": ["bf16"], "batch_sizes": [1], "limit": 3}
    )
    assert [x.label for x in o.configs()] == ["big/bf16/bs1"]
    assert o.configs()[0].limit == 3
    with pytest.raises(CampaignError, match=r"models: 'nope'; this campaign has: small, big"):
        c.with_overrides({"models": ["nope"]})
    with pytest.raises(CampaignError, match="unknown parameter 'colour'"):
        c.with_overrides({"colour": "red"})
    with pytest.raises(CampaignError, match="matrix is empty"):
        c.with_overrides({"models": ["big"], "batch_sizes": [16]})
    with pytest.raises(CampaignError, match="precisions: unknown value"):
        c.with_overrides({"precisions": ["fp4"]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": []}, "models: at least one model is required"),
        ({"precisions": ["fp9"]}, r"precisions: unknown value\(s\) 'fp9'"),
        ({"batch_sizes": [0]}, "batch_sizes: expected integers >= 1"),
        ({"device": "auto"}, "device: unknown value 'auto'"),
        ({"limt": 3}, "limt: unknown field"),
        ({"max_new_tokens": "lots"}, "max_new_tokens: expected int"),
        ({"models": [{"name": "a", "batch_szes": [1]}]}, r"models\[0\].batch_szes: unknown field"),
        ({"models": [{"name": "a"}, {"name": "a"}]}, "duplicate model name"),
        (
            {"precisions": ["fp8"]},
            r"models\[0\] \(small\) x fp8 x batch_size=1: precision fp8 is supported on hpu only",
        ),
        ({"options": {"top_kk": 1}}, "did you mean 'top_k'"),
        ({"exclude": [{"colour": 1}]}, r"exclude\[0\]"),
    ],
)
def test_errors_name_file_field_and_problem(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert re.search(message, text), text


def test_null_means_the_default_and_an_empty_required_list_is_an_error() -> None:
    c = parse_campaign("t", {**BASE, "batch_sizes": None, "limit": None, "slo": None})
    assert c.batch_sizes == (1,) and c.limit is None and c.slo_ttft_ms is None
    with pytest.raises(CampaignError, match="batch_sizes: expected at least 1 value"):
        parse_campaign("t", {**BASE, "batch_sizes": []})


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: a\n  precisions: [bf16\n")
    with pytest.raises(CampaignError, match=r"bad.yaml:\d+: invalid YAML"):
        load_campaign(path)


def test_shipped_campaigns_parse() -> None:
    from tests.conftest import REPO

    smoke = load_campaign(REPO / "dags" / "campaigns" / "smoke.yaml")
    assert smoke.schedule is None and smoke.device == "cpu" and len(smoke.configs()) >= 2


def test_lanes_are_targets_times_world_sizes_and_pools_their_largest_task() -> None:
    """One mapped benchmark task per lane: Airflow fixes queue, pool and slots per task."""
    from tests.conftest import REPO

    nightly = load_campaign(REPO / "dags" / "campaigns" / "nightly.yaml")
    assert [(ln.suffix, ln.world_size, ln.pool) for ln in nightly.lanes()] == [
        ("", 1, "hpu"),
        ("_tp8", 8, "hpu"),
    ]
    assert nightly.pools() == {"hpu": 8}
    data = yaml.safe_load((REPO / "dags" / "campaigns" / "nightly.yaml").read_text())
    data["targets"] = [
        {"name": "gaudi2", "queue": "gaudi2", "pool": "gaudi2_cards"},
        {"name": "gaudi3", "queue": "gaudi3"},  # the campaign's pool
    ]
    fleet = parse_campaign("fleet", data)
    assert [(ln.suffix, ln.queue, ln.pool, ln.target) for ln in fleet.lanes()] == [
        ("_gaudi2", "gaudi2", "gaudi2_cards", "gaudi2"),
        ("_tp8_gaudi2", "gaudi2", "gaudi2_cards", "gaudi2"),
        ("_gaudi3", "gaudi3", "hpu", "gaudi3"),
        ("_tp8_gaudi3", "gaudi3", "hpu", "gaudi3"),
    ]
    assert fleet.pools() == {"gaudi2_cards": 8, "hpu": 8}


# -- an empty matrix says why -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "reasons"),
    [
        (
            {"models": ["big"], "batch_sizes": [16]},
            "batch_sizes [16] are all above max_batch_size 4 of model big",
        ),
        (
            {"models": ["big"], "precisions": ["fp32"]},
            "model big runs only its own precisions [bf16], none of the selected [fp32]",
        ),
        (
            {"precisions": ["fp32"], "batch_sizes": [16]},
            "exclusions removed every configuration of model small "
            "(exclude[0] {model: small, batch_size: 16} removed 1); "
            "model big runs only its own precisions [bf16], none of the selected [fp32]",
        ),
    ],
)
def test_an_empty_matrix_after_overrides_names_its_cause(conf: dict, reasons: str) -> None:
    campaign = parse_campaign("t", {**BASE, "exclude": [{"model": "small", "batch_size": 16}]})
    with pytest.raises(CampaignError) as info:
        campaign.with_overrides(conf)
    assert str(info.value) == (
        f"<campaign> (trigger params): the matrix is empty after overrides and exclusions: {reasons}"
    )


def test_exclusions_that_remove_everything_are_named_with_their_counts() -> None:
    data = {
        **BASE,
        "models": [{"name": "small"}],
        "exclude": [{"precision": "fp32"}, {"model": "small", "batch_size": 1}, {"model": "x"}],
    }
    with pytest.raises(CampaignError) as info:
        parse_campaign("t", {**data, "precisions": ["fp32", "bf16"], "batch_sizes": [1]})
    assert str(info.value) == (
        "<campaign>: the matrix is empty: exclusions removed every configuration of model "
        "small (exclude[0] {precision: fp32} removed 1, exclude[1] {model: small, batch_size: 1} "
        "removed 1)"
    )


# -- ${VAR} from an allow-list only -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"models": [{"name": "m", "path": "/w/${AWS_SECRET_ACCESS_KEY}"}]},
            "models[0].path: ${AWS_SECRET_ACCESS_KEY} is not expanded in campaign files; "
            "allowed: BENCH_HOME, BENCH_MODELS_DIR, HF_HOME",
        ),
        (
            {"models": ["$DB_PASSWORD"]},
            "models[0].name: ${DB_PASSWORD} is not expanded in campaign files; "
            "allowed: BENCH_HOME, BENCH_MODELS_DIR, HF_HOME",
        ),
        (
            {"notify": {"webhook": "https://hooks.example/${OPENAI_API_KEY}"}},
            "notify.webhook: ${OPENAI_API_KEY} is not expanded in campaign files; "
            "allowed: BENCH_NOTIFY_WEBHOOK",
        ),
    ],
)
def test_only_allow_listed_variables_may_appear(change: dict, message: str) -> None:
    with pytest.raises(CampaignError) as info:
        parse_campaign("t", {**BASE, **change}, source="t.yaml")
    assert str(info.value) == f"t.yaml: {message}"


def test_allowed_variables_expand_on_the_loading_machine(
    bench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_MODELS_DIR", "/models")
    data = {
        **BASE,
        "models": [
            {"name": "a", "path": "${BENCH_HOME}/models/a"},
            {"name": "b", "path": "$BENCH_MODELS_DIR/b"},
        ],
        "notify": {"webhook": "${BENCH_NOTIFY_WEBHOOK}"},
    }
    campaign = parse_campaign("t", data)
    paths = {c.model: c.load_path for c in campaign.configs()}
    assert paths == {"a": f"{bench_home.resolve()}/models/a", "b": "/models/b"}
    assert campaign.notify_webhook == "${BENCH_NOTIFY_WEBHOOK}"  # expanded only when posting


# -- trigger-time overrides read the same table as the form -------------------------------------

OPENAI = {
    "backend": "openai",
    "device": "cuda",
    "options": {"base_url": "http://127.0.0.1:9/v1"},
    "concurrencies": [1, 8],
    "request_rates": [2.5],
    "models": [{"name": "m", "trust_remote_code": True}, "n"],
}


def test_overrides_take_form_strings_and_refuse_what_cannot_apply() -> None:
    c = parse_campaign("t", BASE)
    picked = c.with_overrides({"batch_sizes": ["4", 1, "4"], "limit": None, "stop_at_eos": True})
    assert picked.batch_sizes == (4, 1) and picked.limit is None
    assert {cfg.ignore_eos for cfg in picked.configs()} == {False}
    for conf, message in [
        ({"pool": "gpu"}, "pool: set in the campaign file only (the DAG is built with it); "),
        ({"concurrencies": [4]}, "concurrencies: does not apply to backend hf"),
        ({"batch_sizes": ["many"]}, "batch_sizes: expected integers >= 1 and <= 4096, got 'many'"),
        ({"warmup": 500}, "warmup: must be <= 100, got 500"),
        ({"campaign": "nightly"}, "campaign: this is campaign 't', not 'nightly'"),
        ({"trust_remote_code": ["small"]}, "'small' not opted in by the campaign file"),
    ]:
        with pytest.raises(CampaignError, match=re.escape(message)):
            c.with_overrides(conf)


def test_an_openai_campaign_has_load_points_and_per_model_trust() -> None:
    """An endpoint's precision is unknown unless the file says it (the client cannot see it)."""
    c = parse_campaign("o", OPENAI)
    assert [x.label for x in c.configs()] == [
        "m/unknown/c1", "m/unknown/c8", "m/unknown/r2.5", "n/unknown/c1", "n/unknown/c8", "n/unknown/r2.5",
    ]  # fmt: skip
    assert {x.model: x.trust_remote_code for x in c.configs()} == {"m": True, "n": False}
    rates = c.with_overrides({"request_rates": ["4", 0.5], "concurrencies": None})
    assert [x.label for x in rates.configs()] == [
        "m/unknown/r4",
        "m/unknown/r0.5",
        "n/unknown/r4",
        "n/unknown/r0.5",
    ]
    closed = c.with_overrides({"request_rates": [], "concurrencies": []})
    assert [x.label for x in closed.configs()] == ["m/unknown/c1", "n/unknown/c1"]  # one point: c1
    withdrawn = c.with_overrides({"trust_remote_code": [], "models": ["m"]})
    assert not any(x.trust_remote_code for x in withdrawn.configs())  # whatever the order
    with pytest.raises(CampaignError, match="batch_sizes: does not apply to backend openai"):
        c.with_overrides({"batch_sizes": [8]})


@pytest.mark.parametrize("data", [BASE, OPENAI], ids=["hf", "openai"])
def test_the_form_and_the_overrides_are_one_list(data: dict) -> None:
    """Every form field is accepted as an override with its default and
    changes nothing; every trigger-settable entry of the table that applies
    to the backend is in the form (request_rates on openai included)."""
    from bench.campaign.fields import AXES, FIELDS
    from bench.campaign.form import CAMPAIGN, TRUST, applies

    c = parse_campaign("t", data)
    form = c.trigger_form()
    defaults = {name: spec["default"] for name, spec in form.items()}
    assert [x.label for x in c.with_overrides(defaults).configs()] == [x.label for x in c.configs()]
    expected = {CAMPAIGN, "models"}
    expected |= {a.key for a in AXES if applies(a.load_shape, c.spec)}
    expected -= set() if c.targets else {"targets"}  # shown only to choose among the file's
    expected |= {f.name for f in FIELDS if f.trigger and applies(f.load_shape, c.spec)}
    expected |= {TRUST} if any(m.trust_remote_code for m in c.models) else set()
    assert set(form) == expected


def test_run_config_fields_join_the_campaign_table_with_their_defaults() -> None:
    from bench.campaign import fields as table
    from bench.core.config import FIELDS as CONFIG_FIELDS

    for f in CONFIG_FIELDS:
        meta = f.setting
        if meta.campaign:
            entry = table.field(meta.campaign.replace(".", "_"))
            assert entry is not None, f.name
            expected = f.default if meta.campaign_default is UNSET else meta.campaign_default
            assert entry.default == ((not expected) if meta.inverted else expected), f.name
            assert entry.config == f.name and entry.help == meta.help
        if meta.axis:
            axis = table.axis(meta.axis)
            assert axis is not None and axis.fields == (f.name,)
        elif meta.model_key:
            assert meta.model_key in {m.key for m in table.MODEL_FIELDS}, f.name
    assert parse_campaign("t", {"models": ["m"]}).settings == {
        entry.name: entry.default for entry in table.FIELDS
    }


def test_a_matrix_axis_is_one_entry_of_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """An axis whose items set several fields, declared in one place (as
    ``shapes: [{input, output}]`` will be): parsing, per-model lists, the
    matrix, exclusions, overrides and the form all pick it up."""
    from bench.campaign import fields as table
    from bench.core.fields import Value

    layouts = table.Axis(
        key="layouts",
        item=Value(dict, record={"cards": Value(int, minimum=1, maximum=8), "eos": Value(bool)}),
        default=(),
        help="card counts, each with its EOS rule",
        title="Layouts",
        fields=("world_size", "ignore_eos"),
        model_key="layouts",
        min_items=0,
        cell=lambda item: {"world_size": item["cards"], "ignore_eos": not item["eos"]},
    )
    monkeypatch.setattr(table, "AXES", (*table.AXES, layouts))
    data = {
        "backend": "habana",
        "device": "hpu",
        "precisions": ["bf16", "fp8"],
        "batch_sizes": [1, 8],
        "layouts": [{"cards": 1, "eos": False}, {"cards": 2, "eos": True}],
        "models": ["small", {"name": "big", "layouts": [{"cards": 8, "eos": False}]}],
        "exclude": [{"model": "small", "world_size": 2, "precision": "fp8"}],
    }
    plain = {k: v for k, v in data.items() if k != "layouts"} | {"models": ["small"]}
    assert len(parse_campaign("t", plain).configs()) == 4  # omitted: it does not vary
    c = parse_campaign("t", data)
    points = [(x.label, x.ignore_eos) for x in c.configs()]
    assert len(points) == 2 * 2 * 2 - 2 + 2 * 2  # small: 8 minus 2 excluded; big: 4
    assert ("small/bf16/bs8/tp2", False) in points and ("big/fp8/bs1/tp8", True) in points
    assert "small/fp8/bs1/tp2" not in dict(points)
    with pytest.raises(CampaignError, match=r"layouts\[1\]: cards: must be <= 8, got 16"):
        parse_campaign(
            "t", {**data, "layouts": [{"cards": 1, "eos": True}, {"cards": 16, "eos": True}]}
        )
    form = c.trigger_form()["layouts"]
    assert form["items"]["required"] == ["cards", "eos"] and form["default"] == data["layouts"]
    only = c.with_overrides({"layouts": [{"cards": 2, "eos": True}], "models": ["small"]})
    assert [x.label for x in only.configs()] == ["small/bf16/bs1/tp2", "small/bf16/bs8/tp2"]


def test_two_configurations_under_one_label_are_an_error_not_a_loss() -> None:
    data = {**BASE, "models": [{"name": "org1/llama"}, {"name": "org2/llama"}]}
    with pytest.raises(CampaignError) as info:
        parse_campaign("t", data, source="t.yaml")
    assert str(info.value) == (
        "t.yaml: models[1]: two configurations share the label llama/fp32/bs1 (they differ "
        "in model); rename a model or make the label tell them apart"
    )


def test_reference_precision_defaults_to_the_most_precise_one_run() -> None:
    assert parse_campaign("t", BASE).reference == "fp32"
    only_low = {**BASE, "precisions": ["fp16", "bf16"], "models": [{"name": "m"}]}
    assert parse_campaign("t", only_low).reference == "bf16"  # fp32 > bf16 > fp16 > fp8
    chosen = parse_campaign("t", {**BASE, "reference_precision": "bf16"})
    assert chosen.reference == "bf16"
    # a trigger that selects precisions without fp32: the default follows the selection
    assert parse_campaign("t", BASE).with_overrides({"precisions": ["bf16"]}).reference == "bf16"
    with pytest.raises(CampaignError, match=r"^<campaign>: reference_precision: fp16 is not run "
                       r"by this campaign \(precisions: bf16, fp32\)$"):  # fmt: skip
        parse_campaign("t", {**BASE, "reference_precision": "fp16"})
    with pytest.raises(CampaignError, match="reference_precision"):
        parse_campaign("t", {**BASE, "reference_precision": "fp64"})


def test_no_outputs_is_a_campaign_key_outside_the_fingerprint() -> None:
    kept, dropped = (
        parse_campaign("t", {**BASE, "no_outputs": v}).configs()[0] for v in (False, True)
    )
    assert (kept.no_outputs, dropped.no_outputs) == (False, True)
    ident = {"prompt_set_sha": "s", "n_requests": 8}
    assert kept.fingerprint(**ident) == dropped.fingerprint(**ident)


def test_targets_are_an_axis_routed_per_target() -> None:
    """``targets:`` (issue 14): every configuration once per target, labels
    ending in @name, the target's device and expected device model set; names
    checked; no targets: one implicit target, labels as before."""
    one = {"device": "cpu", "precisions": ["fp32"], "models": ["m"]}
    data = {
        **one,
        "batch_sizes": [1, 2],
        "targets": [
            {"name": "gaudi2", "queue": "g2", "device_model": "HL-225"},
            {"name": "cpu-pool", "queue": "cpu", "device": "cpu", "pool": "cpu_slots"},
        ],
    }
    c = parse_campaign("t", data)
    points = [(x.label, x.target, x.device_model) for x in c.configs()]
    assert points == [
        ("m/fp32/bs1@gaudi2", "gaudi2", "HL-225"),
        ("m/fp32/bs2@gaudi2", "gaudi2", "HL-225"),
        ("m/fp32/bs1@cpu-pool", "cpu-pool", None),
        ("m/fp32/bs2@cpu-pool", "cpu-pool", None),
    ]
    fingerprints = {x.fingerprint(prompt_set_sha="0" * 64, n_requests=8) for x in c.configs()}
    assert len(fingerprints) == 2  # the target is not in the configuration's identity
    only = c.with_overrides({"targets": [c.targets[1]]})
    assert [x.label for x in only.configs()] == ["m/fp32/bs1@cpu-pool", "m/fp32/bs2@cpu-pool"]
    assert [x.label for x in parse_campaign("t", one).configs()] == ["m/fp32/bs1"]
    for targets, message in (
        ([{"name": "a b"}], r"targets\[0\]: name 'a b': letters, digits"),
        ([{"name": "a"}, {"name": "a", "queue": "q"}], r"targets\[1\]: name 'a' is used twice"),
        ([{"name": "a", "rack": 3}], r"targets\[0\]"),
    ):
        with pytest.raises(CampaignError, match=message):
            parse_campaign("t", {**one, "targets": targets})
