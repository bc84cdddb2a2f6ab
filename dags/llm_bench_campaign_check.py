"""Surfaces broken campaign files as an Airflow DAG import error.

``llm_bench.py`` builds a DAG for every campaign file that validates and
skips the others, so a typo in one file never stops the nightly campaign.
This file defines no DAG: it re-validates ``dags/campaigns/*.yaml`` and
fails to import when any file is broken, so the Airflow UI shows an import
error that names each bad file, the field and the problem.
"""

from __future__ import annotations

from pathlib import Path

from bench.campaign import CampaignError, campaign_files, load_campaign

# Mention "airflow" and "DAG" so Airflow's safe-mode scan parses this file.

_errors = []
for _path in campaign_files(Path(__file__).resolve().parent / "campaigns"):
    try:
        load_campaign(_path)
    except CampaignError as exc:
        _errors.append(str(exc))

if _errors:
    raise CampaignError(
        f"{len(_errors)} campaign file(s) invalid, their DAGs are not loaded:\n"
        + "\n".join(_errors)
    )
