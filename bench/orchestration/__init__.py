"""What the campaign DAG's tasks do, as plain Python (``tasks``), and the
local Airflow environment that ``make airflow`` and ``make demo`` start
(``airflow_env``). The DAG files only wrap these functions.
"""
