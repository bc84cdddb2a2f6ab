"""Campaign files: a YAML description of a benchmark matrix.

``dags/campaigns/<name>.yaml`` becomes Airflow DAG ``llm_bench_<name>``, but
nothing here knows about Airflow: parsing, validation, trigger-time
overrides, the trigger form's schema and the matrix expansion are plain
Python, so the CLI, tests and DAGs share them. The format is documented in
``docs/campaign-format.md`` (a test keeps it equal to the table).

- :mod:`~bench.campaign.fields`: the field table, the one declaration every
  other module reads (RunConfig fields join it through their metadata);
- :mod:`~bench.campaign.model`: :class:`Campaign` and its matrix;
- :mod:`~bench.campaign.parse`: files -> Campaign, errors naming file and key;
- :mod:`~bench.campaign.overrides`: trigger values applied and re-validated;
- :mod:`~bench.campaign.form`: the Airflow trigger form.
"""

from __future__ import annotations

from bench.campaign.model import Campaign, Lane, ModelEntry
from bench.campaign.parse import campaign_files, load_campaign, parse_campaign
from bench.errors import CampaignError

__all__ = [
    "Campaign",
    "CampaignError",
    "Lane",
    "ModelEntry",
    "campaign_files",
    "load_campaign",
    "parse_campaign",
]
