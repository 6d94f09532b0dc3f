"""INFO_NEEDED: gather read-only evidence the reviewer asked for. Commands pass the same rules
as any step; what the rules refuse is reported as refused, never run."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.executor import executor_for
from activities.executor.base import runs_root
from activities.prompt import read_capped
from activities.redact import redact
from models.plan import VerifyStep
from models.policy import check_path, evaluate_steps, load_policy
from models.request import Evidence, EvidenceInput, EvidenceOutput

EVIDENCE_TIMEOUT_S = 60


@activity.defn
async def gather_evidence(inp: EvidenceInput) -> EvidenceOutput:
    workspace = Path(inp.workspace)
    policy = load_policy(workspace)
    executor = executor_for(inp.settings.executor, workspace, inp.workflow_id)
    items: list[Evidence] = []
    for n, req in enumerate(inp.requests):
        activity.heartbeat(n)
        if req.kind == "read_file":
            reason = check_path(req.target, workspace)
            text = (
                f"refused: {reason}"
                if reason
                else read_capped(workspace, req.target, inp.settings.bounds.max_file_bytes)
            )
            items.append(
                Evidence(
                    kind=req.kind, target=req.target, content=redact(text if text is not None else "(does not exist)")
                )
            )
            continue
        step = VerifyStep(id=f"info{inp.round}-{n}", type="verify", command=req.target)
        findings = evaluate_steps([step], workspace, policy, require_verify=False)
        if findings:
            items.append(
                Evidence(kind=req.kind, target=req.target, content="refused: " + "; ".join(f.line() for f in findings))
            )
            continue
        run_dir = runs_root(workspace, inp.workflow_id) / f"info-{inp.round}-{n}"
        outcome = await executor.run(req.target, run_dir, EVIDENCE_TIMEOUT_S, inp.settings.executor.output_cap_bytes)
        items.append(
            Evidence(kind=req.kind, target=req.target, content=f"exit {outcome.exit_code}\n{redact(outcome.output)}")
        )
    return EvidenceOutput(items=items)
