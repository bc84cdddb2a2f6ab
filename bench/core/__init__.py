"""The core of a benchmark, free of any backend, database or Airflow:
configuration and its fingerprint (``config``, ``hashing``), prompt sets
(``prompts``), the timing streamer (``streamer``), per-request records
(``records``), run metrics (``metrics``) and the result file (``results``).
Everything here imports light; torch and numpy load inside the functions
that need them, or in ``metrics``/``streamer`` which only run-time code uses.
"""
