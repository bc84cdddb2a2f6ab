"""Every exception the library raises on purpose.

A failed *request* is data (``RequestRecord.success = False``); a failed
*setup* raises one of these. The CLI turns them into a one-line message and a
non-zero exit, so the message must read well on its own::

    BenchError
    ├── ConfigError          bad option or value (nothing was run)
    │   └── CampaignError    ... in a campaign file or trigger override; names file and field
    ├── PromptError          unreadable, empty or malformed prompt set
    ├── ModelLoadError       model/tokenizer could not be loaded
    ├── DeviceError          requested device or feature not available here
    ├── ResultFileError      a result JSONL file is unreadable or truncated
    ├── BenchmarkFailed      the measured run itself failed (status != ok)
    ├── NotifyError          the regression webhook refused the message
    └── StoreError           results database problem
        └── DatabaseUnavailable  cannot connect (the spool keeps the result)

How a run that died is classified (``failed``/``oom``/``timeout``) is data
on the result, not an exception type: see ``bench.runner.classify_failure``
and the parent/child contract in ``bench.orchestration.child``.
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class; ``str(exc)`` is the one-line message shown to users."""


class ConfigError(BenchError, ValueError):
    """A configuration or campaign value is invalid."""


class CampaignError(ConfigError):
    """A campaign file or trigger override is invalid; the message locates it."""


class PromptError(BenchError):
    """A prompt set cannot be used."""


class ModelLoadError(BenchError):
    """The model or tokenizer could not be loaded."""


class DeviceError(BenchError):
    """The requested device, or a feature of it, is not available."""


class ResultFileError(BenchError):
    """A result file is unreadable, truncated or malformed."""


class BenchmarkFailed(BenchError):
    """The measured run failed; ``status`` is what the results store records."""

    status = "failed"


class NotifyError(BenchError):
    """The webhook did not accept the message."""


class StoreError(BenchError):
    """The results database rejected an operation."""


class DatabaseUnavailable(StoreError):
    """The results database cannot be reached; results stay in the spool."""
