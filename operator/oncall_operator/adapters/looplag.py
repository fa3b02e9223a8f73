"""How far behind the operator's one event loop runs, as a histogram an SRE can alert on.

Every flow of the operator (the intake's handlers, the watches' decoding, the escalation's looks)
shares one asyncio loop on one core. When it has more ready work than it can run, everything is
late by the same backlog, and a due page with it (issue 18: level-2 pages tens of seconds late
while an alert storm saturated the machine). :func:`watch` asks for a short sleep again and again
and records how much later than asked it returned: ``oncall_event_loop_lag_seconds``.
"""

import asyncio

from oncall_operator.adapters import metrics

EVERY = 0.25
"""Seconds of each probe's sleep."""


async def watch(every: float = EVERY) -> None:
    """Probe the loop every ``every`` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + every
        await asyncio.sleep(every)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - asked))
