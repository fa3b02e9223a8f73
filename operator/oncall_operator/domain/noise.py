"""Noise control: a flapping alert group stays one Incident, and a person gets at most so many pages an hour.

Pure, tables in ``tests/unit/test_noise.py``.

**Flapping.** An alert group that resolves and fires again and again would reopen its Incident
and page on every round. :func:`flapping` says when the group has resolved ``resolutions`` times
within ``window`` (the policy's ``spec.noise.flapResolutions`` and ``flapWindow``, :class:`Flap`;
by default ``FLAP_RESOLUTIONS`` and ``FLAP_WINDOW``), read from the Incident's timeline, so it
survives restarts;
:mod:`.alert_incident` then takes it back to where it stood (Triggered, or Acknowledged) with its
escalation running on from the last start, counts the flap in ``status.flaps`` and says so in
the timeline, instead of reopening it with a new page.

The per-person page budget is :mod:`.page_budget`.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt

from oncall_operator.api import durations, incident, policy

FLAP_RESOLUTIONS = 2
"""Resolutions within the window after which a firing again is a flap, not a reopening."""
FLAP_WINDOW = dt.timedelta(minutes=30)
RESOLVED = "Resolved"


@dataclasses.dataclass(frozen=True)
class Flap:
    """When a group firing again is a flap: ``resolutions`` within ``window`` (a policy's ``spec.noise``)."""

    resolutions: int = FLAP_RESOLUTIONS
    window: dt.timedelta = FLAP_WINDOW

    @classmethod
    def of(cls, spec: policy.EscalationPolicySpec | None) -> "Flap":
        """The policy's thresholds; today's defaults for an Incident without a policy."""
        if spec is None:
            return cls()
        return cls(spec.noise.flap_resolutions, durations.parse(spec.noise.flap_window))

    def text(self) -> str:
        minutes = int(self.window.total_seconds() // 60)
        return f"{self.resolutions}+ resolutions in {minutes}m" if minutes else f"{self.resolutions}+ resolutions"


DEFAULT_FLAP = Flap()


def flapping(
    timeline: cabc.Sequence[incident.TimelineEntry],
    now: dt.datetime,
    resolutions: int = FLAP_RESOLUTIONS,
    window: dt.timedelta = FLAP_WINDOW,
) -> bool:
    """Whether a group firing again at ``now`` is flapping: ``resolutions`` resolutions within ``window``."""
    recent = [e for e in timeline if e.type == RESOLVED and now - window <= e.at <= now]
    return len(recent) >= resolutions
