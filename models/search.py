"""Search attributes: what the Temporal web UI can filter and show for iter's workflows.

Registered by ``temporal/`` before any workflow upserts them."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PROJECT = SearchAttributeKey.for_keyword("IterProject")
ITEM = SearchAttributeKey.for_keyword("IterItem")  # the request id or the session name
PHASE = SearchAttributeKey.for_keyword("IterPhase")
OUTCOME = SearchAttributeKey.for_keyword("IterOutcome")

ALL = (PROJECT, ITEM, PHASE, OUTCOME)
