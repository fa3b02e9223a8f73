"""Feed the incident board of :mod:`~oncall_operator.adapters.metrics` from the Incidents Kopf sees.

Kopf lists every Incident at start-up and then reports each change, so the open-incident gauge
is right after a restart too, and MTTA/MTTR are observed when an Incident shows a fresh
acknowledgement or resolution.
"""

from typing import Any

import kopf
import pydantic

from oncall_operator.adapters import metrics
from oncall_operator.api import GROUP, VERSION, incident, kinds


@kopf.on.event(GROUP, VERSION, kinds.INCIDENT.plural)
async def incident_board(type: str, uid: str, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        metrics.BOARD.forget(uid)
        return
    try:
        inc = incident.Incident.model_validate(dict(body))
    except pydantic.ValidationError:
        return  # the Incident's own handler reports what is wrong with it
    metrics.BOARD.see(uid, inc)
