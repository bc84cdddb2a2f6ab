"""``${VAR}`` in configuration values: expanded from an allow-list only.

A campaign file is written by whoever may edit ``dags/campaigns/``, and what
it expands travels into stored results, error messages and task logs. If any
variable expanded, ``path: ${AWS_SECRET_ACCESS_KEY}`` would copy a worker's
secret into the results database via the error "model directory <secret>
does not exist". So a value may name only the variables listed here, each
meant to be shared: where weights and state live, and the notification
webhook (a secret itself, but one that is only ever sent to its own URL).
Anything else is rejected when the value is validated, naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from bench.paths import bench_home

#: Variables a model name or ``path`` may use.
PATH_VARS: tuple[str, ...] = ("BENCH_HOME", "BENCH_MODELS_DIR", "HF_HOME")
#: Variables a campaign's ``notify.webhook`` may use.
WEBHOOK_VARS: tuple[str, ...] = ("BENCH_NOTIFY_WEBHOOK",)

_REFERENCE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def references(text: str) -> list[str]:
    """Names of the variables ``text`` refers to (``$NAME`` or ``${NAME}``)."""
    return [_name(match) for match in _REFERENCE.finditer(text)]


def _name(match: re.Match[str]) -> str:
    return match.group(1) if match.group(1) is not None else match.group(2)


def disallowed(text: str, allowed: Iterable[str]) -> str | None:
    """The first variable ``text`` refers to that is not in ``allowed``."""
    permitted = set(allowed)
    return next((name for name in references(text) if name not in permitted), None)


def expand(text: str, allowed: Iterable[str]) -> str:
    """Expand the allowed variables (``BENCH_HOME`` defaults like
    :func:`bench.paths.bench_home`), leave any other reference as written,
    then expand ``~``."""
    permitted = set(allowed)

    def value(match: re.Match[str]) -> str:
        name = _name(match)
        if name not in permitted:
            return match.group(0)
        if name == "BENCH_HOME":
            return str(bench_home())
        return os.environ.get(name, match.group(0))

    return os.path.expanduser(_REFERENCE.sub(value, text))
