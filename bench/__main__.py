"""``python -m bench`` == the ``bench`` console script."""

from bench.cli import main

raise SystemExit(main())
