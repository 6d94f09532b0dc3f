"""INFO_NEEDED: gather read-only evidence the reviewer asked for. Commands pass the same rules
as any step; what the rules refuse is reported as refused, never run."""

from __future__ import annotations

import shlex
from pathlib import Path

from temporalio import activity

from activities.executor import ExecutorUnavailable, executor_for
from activities.executor.base import runs_root, sealed_with, unavailable_failure
from activities.reads import read_capped
from activities.redact import redact
from models.config import data_dir
from models.plan import VerifyStep
from models.request import Evidence, EvidenceInput, EvidenceOutput
from models.review import Finding
from policy import check_path, evaluate_steps, load_policy

EVIDENCE_TIMEOUT_S = 60


@activity.defn
async def gather_evidence(inp: EvidenceInput) -> EvidenceOutput:
    try:
        with sealed_with(inp.journal_seal):
            return await _gather(inp)
    except ExecutorUnavailable as exc:
        raise unavailable_failure(exc) from None


async def _gather(inp: EvidenceInput) -> EvidenceOutput:
    workspace = Path(inp.workspace)
    policy = load_policy(workspace)
    executor = executor_for(inp.settings.executor, workspace, inp.workflow_id, data_dir(inp.settings))
    items: list[Evidence] = []
    for n, req in enumerate(inp.requests):
        activity.heartbeat(n)
        reading = req.kind == "read_file"
        # Reading a file is judged as `cat FILE` would be, so the rules that keep .env and ~/.ssh
        # out of commands keep them out of evidence too.
        command = f"cat -- {shlex.quote(req.target)}" if reading else req.target
        step = VerifyStep(id=f"info{inp.round}-{n}", type="verify", command=command)
        findings = evaluate_steps([step], workspace, policy, require_verify=False)
        reason = check_path(req.target, workspace) if reading else None
        if reason:
            findings.append(Finding(point=1, step_id=step.id, reason=reason))
        if findings:
            refused = "refused: " + "; ".join(f.line() for f in findings)
            items.append(Evidence(kind=req.kind, target=req.target, content=refused))
            continue
        if reading:
            text = read_capped(workspace, req.target, inp.settings.bounds.max_file_bytes)
            content = text if text is not None else "(does not exist)"
        else:
            run_dir = runs_root(data_dir(inp.settings), inp.workflow_id) / f"info-{inp.round}-{n}"
            outcome = await executor.run(command, run_dir, EVIDENCE_TIMEOUT_S, inp.settings.executor.output_cap_bytes)
            content = f"exit {outcome.exit_code}\n{outcome.output}"
        items.append(Evidence(kind=req.kind, target=req.target, content=redact(content)))
    return EvidenceOutput(items=items)
