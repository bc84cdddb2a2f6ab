"""The reliability tests reuse the Airflow tests' fixtures (the tiny model
where the smoke campaign expects it, a private copy of dags/)."""

from tests.airflow.conftest import dags_copy, smoke_home

__all__ = ["dags_copy", "smoke_home"]
