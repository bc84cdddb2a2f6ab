"""The trigger form as Airflow 3's React UI renders it, in headless Chromium.

A real api-server, scheduler and dag-processor (``make airflow``'s setup)
serve the smoke campaign; the browser logs in, opens the trigger dialog and
reads what a performance engineer sees: the campaign's description first,
the matrix open with multi-selects, the other sections below, nothing that
does not apply to the campaign's backend. It then adds a batch size from
the menu and triggers, and the API must accept what the form sends. The
screenshot of the dialog goes to ``artifacts/trigger-form.png`` (the
README shows a copy, ``docs/img/trigger-form.png``).
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bench.orchestration.airflow_env import ADMIN_USER, admin_password
from tests.airflow.chromium import Page, chromium
from tests.airflow.cluster import Cluster, airflow_cluster
from tests.conftest import REPO, require_tool

pytestmark = [pytest.mark.slow, pytest.mark.scheduler, pytest.mark.browser]

DAG_ID = "llm_bench_smoke"
FORM = "document.querySelector('[data-testid=config-form]')"
DIALOG = f"{FORM}?.closest('[role=dialog]')"


def artifacts_dir() -> Path:
    return Path(os.environ.get("BENCH_ARTIFACTS") or REPO / "artifacts")


def log_in(page: Page) -> None:
    page.wait_for("!!document.querySelector('input[name=password]')")
    page.type_into("input[name=username]", ADMIN_USER)
    page.type_into("input[name=password]", admin_password())
    page.wait_for("!document.querySelector('button[type=submit]').disabled")
    page.evaluate("document.querySelector('button[type=submit]').click()")


def click(page: Page, element: str) -> None:
    """A real pointer click at the element's centre (the accordion and the
    selects react to pointer events, not to ``element.click()``), scrolled into
    view first: a pointer event outside the viewport lands on nothing."""
    box = page.wait_for(  # inside the viewport and still: a section may still be opening
        f"""(() => {{
            const e = {element};
            e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect(), key = JSON.stringify(r);
            const still = window.__benchLastRect === key;
            window.__benchLastRect = key;
            return still && r.top >= 0 && r.bottom <= innerHeight ? r.toJSON() : null;
        }})()""",
        timeout_s=30,
    )
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def press_enter(page: Page) -> None:
    for kind in ("keyDown", "keyUp"):
        page.send(
            "Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13
        )


def sections(page: Page) -> list[list[Any]]:
    """Each section of the form: its title and whether it is open."""
    return list(
        page.evaluate(
            f"""[...{FORM}.querySelectorAll('[data-part=item-trigger]')]
            .map(t => [t.textContent.trim(), t.getAttribute('aria-expanded') === 'true'])"""
        )
    )


def open_rows(page: Page) -> dict[str, dict[str, Any]]:
    """Label -> helper text and selected values, for the rows of the open section."""
    rows = page.evaluate(
        f"""[...{FORM}.querySelectorAll('[data-part=item][data-state=open] label[data-part=label]')]
        .map(l => {{
            const row = l.closest('[data-part=root]');
            return [l.textContent.replace('*', '').trim(), {{
                help: row.querySelector('[data-part=helper-text]')?.textContent.trim() ?? '',
                chips: [...row.querySelectorAll('[aria-label^="Remove "]')]
                    .map(c => c.getAttribute('aria-label').slice('Remove '.length)),
            }}];
        }})"""
    )
    return dict(rows)


def dialog_screenshot(page: Page, path: Path) -> Path:
    box = page.evaluate(f"{DIALOG}.getBoundingClientRect().toJSON()")
    clip = {k: box[k] for k in ("x", "y", "width", "height")} | {"scale": 1}
    data = page.send("Page.captureScreenshot", format="png", clip=clip)["data"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data))
    return path


def wait_for_conf(af: Cluster, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
        if runs:
            return dict(runs[0]["conf"])
        time.sleep(1)
    raise AssertionError(f"no run of {DAG_ID} after the form's Trigger; {af.tail('api-server')}")


def test_the_trigger_form_reads_without_the_docs(db_url: str, tmp_path: Path) -> None:
    binary = require_tool("chromium")
    shot = artifacts_dir() / "trigger-form.png"
    shot.unlink(missing_ok=True)
    with airflow_cluster(tmp_path / "logs") as af, chromium(binary, height=1400) as page:
        af.wait_for_dag(DAG_ID)
        page.goto(f"{af.base_url}/dags/{DAG_ID}")
        log_in(page)
        page.wait_for("!!document.querySelector('[data-testid=trigger-dag-button]')", 120)
        page.evaluate("document.querySelector('[data-testid=trigger-dag-button]').click()")
        page.wait_for(f"{DIALOG}?.textContent.includes('Batch sizes')", 60)

        # the matrix is open; the other sections follow, closed
        assert sections(page) == [
            ["Run Parameters", True],
            ["Load", False],
            ["Model and device", False],
            ["Goodput SLOs", False],
            ["Advanced Options", False],
        ]
        rows = open_rows(page)
        assert list(rows) == ["Campaign", "Models", "Precisions", "Batch sizes"]
        assert rows["Campaign"]["help"].startswith("Smoke campaign. The offline tiny Llama")
        assert rows["Models"]["chips"] == ["tiny-llama"]
        assert rows["Precisions"]["chips"] == ["fp32", "bf16"]
        assert rows["Batch sizes"]["chips"] == ["1", "4"]
        assert "1 to 4096 sequences" in rows["Batch sizes"]["help"]
        assert "The hf backend supports fp32, bf16, fp16." in rows["Precisions"]["help"]
        text = page.evaluate(f"{DIALOG}.textContent")
        assert "Concurrency" not in text and "Request rates" not in text  # openai only
        dialog_screenshot(page, shot)

        # every section's fields carry a description with their bounds and units
        click(page, f"[...{FORM}.querySelectorAll('[data-part=item-trigger]')][1]")
        page.wait_for(
            f"{FORM}.querySelector('[data-part=item][data-state=open]')?.textContent.startsWith('Load')"
        )
        load = open_rows(page)
        assert list(load) == [
            "Output tokens per request",
            "Output lengths",
            "Warmup iterations",
            "Prompt set",
            "Requests per configuration",
            "Seed",
            "Stop at EOS",
            "Timing mode",
            "Shapes",
        ]
        assert "1 to 32768 tokens" in load["Output tokens per request"]["help"]
        assert "0 to 100 iterations" in load["Warmup iterations"]["help"]
        assert "reference reply's length" in load["Output lengths"]["help"]
        assert all(row["help"] for row in load.values()), load

        # add batch size 8 from the menu, trigger: the API takes what the form sends
        click(page, f"[...{FORM}.querySelectorAll('[data-part=item-trigger]')][0]")
        page.wait_for(
            f"{FORM}.querySelector('[data-part=item][data-state=open]')?.textContent.startsWith('Run')"
        )
        click(page, "document.querySelector('#element_batch_sizes')")
        page.send("Input.insertText", text="8")
        page.wait_for(
            "[...document.querySelectorAll('[role=option]')].some(o => o.textContent === '8')"
        )
        press_enter(page)
        page.wait_for(
            f"{DIALOG}.querySelectorAll('#element_batch_sizes [aria-label^=\"Remove \"]').length === 3"
        )
        page.evaluate(
            f"[...{DIALOG}.querySelectorAll('button')].find(b => b.textContent.trim() === 'Trigger').click()"
        )
        conf = wait_for_conf(af)
    assert conf["batch_sizes"] == ["1", "4", "8"], json.dumps(conf)
    assert conf["precisions"] == ["fp32", "bf16"] and conf["campaign"] == "smoke"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 30_000, "a screenshot of a blank dialog compresses to a few KB"
