"""Kopf registrations, and nothing else: each one hands its event to the executor in a line or three.

Importing this package registers every handler with Kopf's default registry; ``cli run``
does that before ``kopf.run``. Each flow reads ``handlers/X -> executor/X -> domain/X``:

- :mod:`.settings`: Kopf's settings, and the one start-up and clean-up handler
  (:mod:`oncall_operator.executor.runtime` starts the pod watch, the loop over open
  Incidents, the Incident watch and the intake in order);
- :mod:`.objects`: the indices of Schedules, Policies and Runbooks, and their Ready checks;
- :mod:`.quiet`: MaintenanceWindows and Heartbeats (indices, status, the heartbeats' tick);
- :mod:`.peering`: the heartbeat of the peering object, for the leadership observer.

Incidents are not watched by Kopf: the operator's own list+watch
(:mod:`oncall_operator.adapters.incidentwatch`) hands their events to
:mod:`oncall_operator.executor.incident_events` (issue 18: Kopf's cost per event and its
listing's memory peak with thousands open).
"""

from oncall_operator.handlers import objects, peering, quiet, settings

__all__ = ["objects", "peering", "quiet", "settings"]
