"""At-least-once delivery in virtual time: claims, leases, restarts, retries and giving up (``domain/delivery.py``).

The engine is driven with an injected ``now`` and a claimant; "a restart" is a new claimant
reading the Incident as it was written, exactly what a new operator process sees.
"""

import dataclasses
import datetime as dt

import pytest

from oncall_operator.api import incident, policy
from oncall_operator.domain import delivery, escalation, lifecycle, notices, pages
from tests.unit.test_escalation import POLICY, T0, resolver

OLD = delivery.Claimant("host/1/100")
NEW = delivery.Claimant("host/2/200")
WINDOW = escalation.retry_window(POLICY, "critical")


def opened() -> incident.Incident:
    spec = incident.IncidentSpec(title="API error rate above SLO", severity="critical")
    return incident.Incident(metadata={"name": "i", "namespace": "ns"}, spec=spec, status=lifecycle.opened(spec, T0))


def step(inc: incident.Incident, at: dt.datetime, who: delivery.Claimant) -> tuple[incident.Incident, list[str]]:
    """One look at ``at`` by ``who``, written back through the wire (what the API server keeps)."""
    decision = escalation.decide(POLICY, inc, at, resolver(), who)
    written = incident.Incident.model_validate(
        inc.model_copy(update={"status": decision.status}).model_dump(mode="json", by_alias=True)
    )
    return written, [f"{s.key}:{','.join(s.channels)}" for s in decision.sends]


def outcome(inc: incident.Incident, at: dt.datetime, who: delivery.Claimant, ok: bool, retryable: bool) -> list[str]:
    assert inc.status is not None
    pending = [n for n in inc.status.escalation.notifications if n.result == "Pending"]
    outs = [delivery.Outcome(n.key, n.channel, ok, "HTTP 500" if not ok else "HTTP 202", retryable) for n in pending]
    return [n.message for n in delivery.record(inc.status.escalation.notifications, outs, at, who, WINDOW)]


def test_the_window_is_the_severitys_response_time() -> None:
    assert dt.timedelta(minutes=5) == WINDOW
    assert escalation.retry_window(POLICY, "info") == dt.timedelta(minutes=5)  # no response time: the ack timeout


def test_a_claim_whose_sender_died_is_sent_again_by_the_next_process_with_the_same_delivery_id() -> None:
    inc, sent = step(opened(), T0, OLD)
    assert sent == [f"page/L1/loop0@{int(T0.timestamp())}:pagerduty"]
    # OLD is SIGKILLed before it records anything; NEW starts ten seconds later
    same_process, again = step(inc, T0 + dt.timedelta(seconds=10), OLD)
    assert again == []  # its own claim is still inside its lease
    inc, again = step(inc, T0 + dt.timedelta(seconds=10), NEW)
    assert again == sent
    note = inc.status.escalation.notifications[0] if inc.status else None
    assert note is not None and note.claimed_by == NEW.identity and note.attempts == 2
    first = escalation.decide(POLICY, opened(), T0, resolver(), OLD).sends[0]
    ids = {
        notices.delivery_id(pages.notice(s, inc, None, at))
        for s, at in ((first, T0), (escalation.decide(POLICY, same_process, T0, resolver(), NEW).sends[0], T0))
    }
    assert len(ids) == 1, "a re-send must carry the first send's delivery id"


def test_a_hung_sender_loses_its_claim_when_the_lease_ends() -> None:
    inc, sent = step(opened(), T0, OLD)
    _, early = step(inc, T0 + delivery.LEASE - dt.timedelta(seconds=1), OLD)
    assert early == []
    _, late = step(inc, T0 + delivery.LEASE, OLD)
    assert late == sent


def test_transient_failures_are_retried_with_backoff_then_failed_on_the_incident() -> None:
    inc, sent = step(opened(), T0, OLD)
    at, retries = T0, 0
    while True:
        failed = outcome(inc, at, OLD, ok=False, retryable=True)
        if failed:
            break
        note = inc.status.escalation.notifications[0] if inc.status else None
        assert note is not None and note.result == "Pending" and note.retry_at is not None and not note.claimed_by
        _, before = step(inc, note.retry_at - dt.timedelta(seconds=1), OLD)
        assert before == []
        at = note.retry_at
        inc, again = step(inc, at, OLD)
        assert again == sent
        retries += 1
    assert retries >= 3  # 10 s, 20 s, 40 s, 80 s ... inside five minutes
    assert failed[0].startswith("not delivered within 5m")
    assert inc.status and inc.status.escalation.notifications[0].result == "Failed"
    # the next level goes on whatever became of the first
    _, l2 = step(inc, T0 + dt.timedelta(minutes=15), OLD)
    assert any(s.startswith("page/L2/") for s in l2)


def test_a_failure_the_receiver_will_never_accept_is_final_at_once() -> None:
    inc, _ = step(opened(), T0, OLD)
    assert outcome(inc, T0, OLD, ok=False, retryable=False) == ["HTTP 500"]


def test_an_outcome_for_a_step_another_process_claimed_since_is_not_ours_to_record() -> None:
    inc, _ = step(opened(), T0, OLD)
    inc, _ = step(inc, T0 + dt.timedelta(seconds=5), NEW)
    assert outcome(inc, T0 + dt.timedelta(seconds=6), OLD, ok=True, retryable=False) == []
    assert inc.status and inc.status.escalation.notifications[0].result == "Pending"


def test_a_stale_claim_past_its_window_is_given_up_with_a_timeline_entry() -> None:
    inc, _ = step(opened(), T0, OLD)
    inc, again = step(inc, T0 + WINDOW, NEW)
    assert not [s for s in again if s.startswith("page/")]  # (the reminder due at 5 min is a step of its own)
    assert inc.status is not None
    note = inc.status.escalation.notifications[0]
    assert note.result == "Failed" and "never recorded" in note.message
    assert inc.status.timeline[-1].type == "NotificationFailed"


def test_a_resolved_incident_stays_open_while_a_send_is_pending() -> None:
    inc, _ = step(opened(), T0, OLD)
    assert outcome(inc, T0, OLD, ok=True, retryable=False) == []
    assert inc.status is not None
    inc.status.phase = incident.Phase.RESOLVED
    inc, sent = step(inc, T0 + dt.timedelta(minutes=1), OLD)
    assert [s.split(":")[0].split("@")[0] for s in sent] == ["resolve"]
    assert inc.status and not inc.status.escalation.closed
    outcome(inc, T0 + dt.timedelta(minutes=1), OLD, ok=True, retryable=False)
    inc, _ = step(inc, T0 + dt.timedelta(minutes=2), OLD)
    assert inc.status and inc.status.escalation.closed


@pytest.mark.parametrize(("attempts", "pause"), [(1, 10), (2, 20), (3, 40), (4, 80), (5, 120), (9, 120)])
def test_backoff_doubles_up_to_two_minutes(attempts: int, pause: int) -> None:
    assert delivery.backoff(attempts) == dt.timedelta(seconds=pause)


OTHER_POD = delivery.Claimant("other-pod/7/150")


@pytest.mark.parametrize(
    ("claimer", "looker", "after", "sent_again"),
    [
        (OLD, NEW, dt.timedelta(seconds=1), True),  # an earlier process of this pod: gone, re-sent at once
        (OLD, OLD, dt.timedelta(seconds=1), False),  # its own claim, inside the lease
        (OTHER_POD, NEW, dt.timedelta(seconds=1), False),  # another replica may be sending it right now
        (OTHER_POD, NEW, delivery.LEASE - dt.timedelta(seconds=1), False),
        (OTHER_POD, NEW, delivery.LEASE, True),  # its lease ran out: it died or hung
        (OTHER_POD, dataclasses.replace(NEW, live=frozenset({"host", "other-pod"})), dt.timedelta(seconds=1), False),
        (OTHER_POD, dataclasses.replace(NEW, live=frozenset({"host"})), dt.timedelta(seconds=1), True),  # peering: gone
    ],
)
def test_whose_claim_is_taken_over_when(
    claimer: delivery.Claimant, looker: delivery.Claimant, after: dt.timedelta, sent_again: bool
) -> None:
    inc, sent = step(opened(), T0, claimer)
    _, again = step(inc, T0 + after, looker)
    assert again == (sent if sent_again else [])


def test_two_operators_that_both_act_send_each_step_once() -> None:
    """Both look before either has recorded its send (the API server orders the writes): each step is sent once."""
    inc, sends = opened(), []
    for second in range(0, 30 * 60, 5):
        at = T0 + dt.timedelta(seconds=second)
        for who in (OLD, OTHER_POD):
            inc, sent = step(inc, at, who)
            sends += [s.split("@")[0] for s in sent]
        for who in (OLD, OTHER_POD):
            outcome(inc, at, who, ok=True, retryable=False)
    assert len(sends) == len(set(sends)) and len(sends) >= 3, sends


def test_the_claimant_is_its_pod() -> None:
    assert delivery.pod_of("oncall-operator-7d9f-x2/41/1764600000") == "oncall-operator-7d9f-x2"
    assert delivery.pod_of("") == ""


HANDOVER = T0 + dt.timedelta(seconds=30)
"""The rota hands over from Ada to Bob between the claim and the re-send."""


def rota(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
    if target.schedule is not None:
        on_call = "Ada" if at < HANDOVER else "Bob"
        return [escalation.Recipient(name=on_call, email=f"{on_call.lower()}@example.com")]
    return [escalation.Recipient(name=target.user or target.team or "?")]


def test_a_page_re_sent_after_the_rota_changed_goes_to_whom_it_was_claimed_for() -> None:
    decided = escalation.decide(POLICY, opened(), T0, rota, OLD)
    [first] = decided.sends
    assert [r.name for r in first.recipients] == ["Ada"]
    inc = opened().model_copy(update={"status": decided.status})
    # OLD is killed before recording; NEW starts after the handover and sends the claim again
    again = escalation.decide(POLICY, inc, HANDOVER + dt.timedelta(seconds=10), rota, NEW)
    [resent] = again.sends
    assert resent.key == first.key  # the same delivery id...
    assert [(r.name, r.email) for r in resent.recipients] == [("Ada", "ada@example.com")]  # ...to the same person
    # whoever is on call now gets the next step, resolved at its own time
    later = opened().model_copy(update={"status": again.status})
    outcome(later, HANDOVER + dt.timedelta(seconds=11), NEW, ok=True, retryable=False)
    next_steps = escalation.decide(POLICY, later, T0 + dt.timedelta(minutes=16), rota, NEW).sends
    assert next_steps and all(r.name != "Ada" for s in next_steps for r in s.recipients if s.level == 2), next_steps
