"""The results store: Postgres schema, lossless loading, named trend queries.

::

    sql/migrations/*.sql  the schema, applied in order   -> migrate.upgrade / status
    sql/queries/*.sql     named trend queries (psql-able) -> queries.load_query / run_query
    db.py        BENCH_DB_URL or the embedded Postgres; engines; error translation
    writer.py    one transaction per run; campaigns; failures of crashed runs
    copyrows.py  request rows as a binary COPY stream
    spool.py     results on disk first, then loaded exactly once

Modules are imported by name (``from bench.store import writer``) so that
``bench run --no-db`` never imports SQLAlchemy.
"""
