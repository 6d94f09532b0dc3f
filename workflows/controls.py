"""What a person does to a running request or session, written once for ``RequestWorkflow`` and
``SessionWorkflow``: pause and resume (signals), approve or deny a held step (updates, each with a
validator, so a refusal never reaches history as a failed workflow task), and the live view that
these and the process both write: the web UI's details, the verdicts, the held steps.

``Controls`` is a base class of both workflows: Temporal registers the handlers defined here as
each workflow's own, under the same names. Deterministic: no I/O here."""

from __future__ import annotations

from typing import Protocol

from temporalio import workflow

from workflows import holds
from workflows.live import LiveStream

with workflow.unsafe.imports_passed_through():
    from models.details import Details
    from models.events import PausedChanged, VerdictGiven, held_events, held_line
    from models.holds import HeldStep, HoldDecision, HoldState


class ControlledState(Protocol):
    """What these handlers read and write of a workflow's state (``RequestState``, ``SessionState``)."""

    paused: bool

    @property
    def holds(self) -> HoldState: ...


class Controls:
    state: ControlledState  # each workflow declares its own state model
    live: LiveStream  # the event stream every viewer reads (models/events.py)
    details: Details  # the web UI's current details

    # --- the live view ---------------------------------------------------------------------------

    def _show_details(self) -> None:
        self.details.paused = self.state.paused
        workflow.set_current_details(self.details.markdown())

    def _verdict(self, verdict: VerdictGiven) -> None:
        self.live.publish(verdict)
        self.details.verdicts[verdict.stage] = verdict.line()

    def _show_held(self, held: list[HeldStep]) -> None:
        for event in held_events(held):
            self.live.publish(event)
        self.details.held = held_line(held)
        self._show_details()

    # --- pause and resume ------------------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        self._paused(True)

    @workflow.signal
    def resume(self) -> None:
        self._paused(False)

    def _paused(self, paused: bool) -> None:
        if paused != self.state.paused:
            self.state.paused = paused
            self.live.publish(PausedChanged(paused=paused))
            self._show_details()

    # --- held steps ------------------------------------------------------------------------------

    @workflow.update
    def approve(self, decision: HoldDecision) -> str:
        """A person lets a held step run (``iter approve ID [STEP]``)."""
        return holds.apply(self.state.holds, decision, approve=True)

    @approve.validator
    def _check_approve(self, decision: HoldDecision) -> None:
        holds.check(self.state.holds, decision)

    @workflow.update
    def deny(self, decision: HoldDecision) -> str:
        """A person refuses a held step (``iter deny ID [STEP] --reason TEXT``): a request's plan goes
        back; a session's task is blocked with the reason and the session goes on."""
        return holds.apply(self.state.holds, decision, approve=False)

    @deny.validator
    def _check_deny(self, decision: HoldDecision) -> None:
        holds.check(self.state.holds, decision)
