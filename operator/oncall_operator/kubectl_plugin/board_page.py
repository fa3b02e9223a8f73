"""The board's HTML: open incidents with their timelines and buttons, who is on call, schedule timelines.

Server-rendered, no script: the page refreshes itself (``<meta http-equiv=refresh>``) and every
button is a POST form carrying the board's CSRF token. Pure: :mod:`board` gathers the objects
and passes them in with ``now``.
"""

import dataclasses
import datetime as dt
import html

from oncall_operator.api import incident, schedule
from oncall_operator.domain import schedules
from oncall_operator.kubectl_plugin import output, timeline_svg
from oncall_operator.kubectl_plugin.incidents import needs_human

TIMELINE_SHOWN = 12
STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1c2024}
header{background:#1c2024;color:#fff;padding:10px 16px}header small{opacity:.75}
main{padding:12px 16px;max-width:1500px}h2{margin:18px 0 8px;font-size:18px}
.notice{background:#fff4c4;border:1px solid #e6c200;padding:8px;border-radius:6px}
.notice.error{background:#ffe5e5;border-color:#e5484d}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.card{background:#fff;border:1px solid #d9dce0;border-radius:8px;padding:10px 12px}
.card h3{margin:0 0 4px;font-size:16px;word-break:break-word}
.sev{font-weight:700;text-transform:uppercase;font-size:12px;padding:1px 6px;border-radius:4px;color:#fff}
.sev.critical{background:#c62a2f}.sev.warning{background:#b35c00}.sev.info{background:#3e63dd}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:6px 0;font-size:14px}dt{color:#60646c}
dd{margin:0;word-break:break-word}
ol.events{font-size:13px;margin:6px 0;padding-left:18px;max-height:220px;overflow:auto}
form{display:inline}button{font-size:15px;padding:6px 14px;margin:4px 6px 0 0;border-radius:6px;cursor:pointer}
button.ack{background:#3e63dd;color:#fff;border:0}button.resolve{background:#fff;border:1px solid #1c2024}
table.now{border-collapse:collapse;background:#fff;font-size:14px;width:100%}
table.now td,table.now th{border:1px solid #d9dce0;padding:3px 8px;text-align:left}
@media (max-width:600px){table.now td:first-child,table.now th:first-child{display:none}body{font-size:14px}}
.scroll{overflow-x:auto;background:#fff;border:1px solid #d9dce0;border-radius:8px}
svg.timeline{display:block;min-width:900px;width:100%;height:auto}
svg .day{stroke:#c1c6cc}svg .now{stroke:#e5484d;stroke-width:2}
svg .daylabel{font-size:12px;fill:#60646c}svg .dst{font-size:11px;fill:#c62a2f;font-weight:600}
svg .role{font-size:14px;font-weight:600}
svg .who{font-size:13px}svg .override rect{stroke:#1c2024;stroke-width:2;stroke-dasharray:5 3}
"""


@dataclasses.dataclass(frozen=True)
class View:
    """Everything a page shows, gathered by the server."""

    context: str
    scope: str
    user: str
    incidents: list[incident.Incident]
    schedules: list[schedule.OnCallSchedule]
    start: dt.datetime | None
    """The first day of the timelines (None: today in each schedule's zone)."""
    days: int
    now: dt.datetime
    token: str
    refresh: int
    notice: str = ""
    failed: bool = False


def _e(text: object) -> str:
    return html.escape(str(text))


def _button(inc: incident.Incident, verb: str, label: str, token: str) -> str:
    path = f"/incidents/{_e(inc.metadata.namespace)}/{_e(inc.metadata.name)}/{verb}"
    return (
        f'<form method="post" action="{path}"><input type="hidden" name="csrf" value="{_e(token)}">'
        f'<button class="{verb}" type="submit">{label}</button></form>'
    )


def _card(inc: incident.Incident, view: View) -> str:
    st = inc.status or incident.IncidentStatus()
    phase = st.phase.value if st.phase else "New"
    facts = [
        ("namespace", inc.metadata.namespace),
        ("phase", phase),
        ("needs human", needs_human(st) or "-"),
        ("acknowledged by", st.acknowledged_by or "-"),
        ("level", st.escalation.level),
        ("on call", st.on_call or "-"),
        ("target", st.target or "-"),
        ("runbook", inc.spec.runbook_ref.name if inc.spec.runbook_ref else "-"),
        ("age", output.age(st.first_seen, view.now) if st.first_seen else "-"),
    ]
    events = [
        f"<li><time>{_e(e.at.strftime('%d %b %H:%M:%S'))}</time> <b>{_e(e.type)}</b> {_e(e.message)}</li>"
        for e in st.timeline[-TIMELINE_SHOWN:]
    ]
    buttons = "" if st.phase == incident.Phase.ACKNOWLEDGED else _button(inc, "ack", "Acknowledge", view.token)
    buttons += _button(inc, "resolve", "Resolve", view.token)
    return (
        f'<article class="card" id="incident-{_e(inc.metadata.namespace)}-{_e(inc.metadata.name)}">'
        f'<h3><span class="sev {_e(inc.spec.severity.value)}">{_e(inc.spec.severity.value)}</span> '
        f"{_e(inc.metadata.name)}</h3><div>{_e(inc.spec.title)}</div>"
        + "<dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd class='{_e(k.replace(' ', '-'))}'>{_e(v)}</dd>" for k, v in facts)
        + f"</dl>{buttons}<ol class='events'>{''.join(events)}</ol></article>"
    )


def _who(scheds: list[schedule.OnCallSchedule], now: dt.datetime) -> str:
    rows = []
    for sched in scheds:
        zone = schedules.zone_of(sched.spec)
        for r in schedules.status(sched.spec, now).roles:
            until = timeline_svg.local_text(r.until, zone) if r.until else "-"
            rows.append(
                f"<tr><td>{_e(sched.metadata.name)}</td><td>{_e(r.role)}</td>"
                f"<td class='oncall'>{_e(', '.join(r.on_call) or 'nobody')}</td><td>{_e(until)}</td>"
                f"<td>{_e(', '.join(r.next) or '-')}</td></tr>"
            )
    head = "<tr><th>schedule</th><th>role</th><th>on call</th><th>until</th><th>next</th></tr>"
    return f'<div class="scroll"><table class="now">{head}{"".join(rows)}</table></div>'


def _first_day(sched: schedule.OnCallSchedule, view: View) -> dt.datetime:
    zone = schedules.zone_of(sched.spec)
    day = (view.start or view.now).astimezone(zone).date()
    return schedules.local_instant(zone, day, dt.time(0, 0))


def page(view: View) -> str:
    notice = ""
    if view.notice:
        notice = f'<p class="notice{" error" if view.failed else ""}" role="status">{_e(view.notice)}</p>'
    cards = "".join(_card(i, view) for i in view.incidents) or "<p>No open incidents.</p>"
    span = f"The {view.days} days from {view.start:%a %d %b %Y}" if view.start else f"The next {view.days} days"
    timelines = "".join(
        f"<h3>{_e(s.metadata.name)} <small>({_e(s.metadata.namespace)}, times in {_e(s.spec.time_zone)})</small></h3>"
        f'<div class="scroll">{timeline_svg.render(s.spec, _first_day(s, view), view.days, view.now)}</div>'
        for s in view.schedules
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{view.refresh}"><title>oncall board</title>'
        f"<style>{STYLE}</style></head><body>"
        f"<header><b>oncall board</b> <small>context {_e(view.context or '-')}, {_e(view.scope)}, "
        f"acting as {_e(view.user)}, {_e(view.now.strftime('%Y-%m-%d %H:%M UTC'))}</small></header><main>"
        f"{notice}<h2>Open incidents ({len(view.incidents)})</h2><div class='cards'>{cards}</div>"
        f"<h2>On call now</h2>{_who(view.schedules, view.now) if view.schedules else '<p>No schedules.</p>'}"
        f"<h2>{_e(span)}</h2>{timelines}</main></body></html>"
    )
