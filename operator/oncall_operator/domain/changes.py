"""A change the automation makes: one exact JSON patch to one object, and how to tell people about it.

Both planners make them (:mod:`.oom_plan` for OOM kills, :mod:`.actions` for runbook actions),
and both executors send them the same way: a server-side dry-run of ``ops`` (and of a Pod of
``template`` where the patch changes the pod template), then the patch. ``before``/``after``
and ``summary`` are what the Incident's timeline and ``status.actions`` show.
"""

import collections.abc as cabc
import dataclasses
import json
from typing import Any

from oncall_operator.api import runbook


@dataclasses.dataclass(frozen=True)
class Change:
    kind: str
    namespace: str
    name: str
    ops: tuple[dict[str, Any], ...]
    before: str
    after: str
    summary: str
    template: cabc.Mapping[str, Any] | None = None
    """The new pod template when the patch changes it: the executor dry-runs a pod of it too."""
    action: str = ""
    """The runbook action that planned it."""
    type: runbook.ActionType | None = None
    container: str = ""
    """The container it is about, for OOM changes."""

    @property
    def patch(self) -> str:
        return json.dumps(list(self.ops), separators=(",", ":"))
