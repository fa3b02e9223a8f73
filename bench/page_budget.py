"""What one page-budget decision costs against N entries of the policy's other Incidents (one person, cap 5).

The budget runs on every look at an Incident of a policy with ``noise.maxPagesPerPersonPerHour``
and reads every entry of the policy's Incidents in that namespace, so its cost grows with them.
Run: ``.venv/bin/python bench/page_budget.py`` (pure code, no cluster).
"""

import datetime as dt
import time

from oncall_operator.api import incident, policy
from oncall_operator.domain import escalation, lifecycle, page_budget

T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)
POLICY = policy.EscalationPolicySpec.model_validate(
    {
        "levels": [{"name": "primary", "after": "0", "targets": [{"user": "Ada"}]}],
        "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "hook", "key": "url"}}],
        "severities": [{"severity": "critical", "response": "Page", "channels": ["hook"]}],
        "noise": {"maxPagesPerPersonPerHour": 5},
    }
)


def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
    return [escalation.Recipient(name=target.user or "?")]


def main() -> None:
    now = T0 + dt.timedelta(minutes=61)
    spec = incident.IncidentSpec(title="disk full", severity="critical")
    inc = incident.Incident(spec=spec, status=lifecycle.opened(spec, now))
    decided = escalation.decide(POLICY, inc, now, resolve)
    for n in (100, 1000, 10000):
        others = [
            page_budget.Entry(
                f"shop/i{i}",
                f"page/L1/loop0@{i}",
                "Ada",
                T0 + dt.timedelta(minutes=i % 60),
                page_budget.HELD_STATE if i % 2 else page_budget.SENT,
                "Level 1 (primary).",
            )
            for i in range(n)
        ]
        rounds = 20
        start = time.perf_counter()
        for _ in range(rounds):
            page_budget.apply(decided.status, decided.sends, set(), others, "shop/me", 5, now, resolve)
        print(f"{n:>6} entries: {(time.perf_counter() - start) / rounds * 1000:.2f} ms per decision")


if __name__ == "__main__":
    main()
