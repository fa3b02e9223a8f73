"""The answer page a signed link opens: one Incident on a phone, and its buttons.

Small and self-contained (no script, no external asset, inline CSS), readable at 390 px wide.
It shows the title, severity, phase, target, who acknowledged, the summary and the latest
timeline entries, and a ``<form method="post">`` per button: opening the page changes nothing
(mail scanners and chat unfurlers fetch every link), only pressing a button does. Every value
from the Incident is HTML-escaped: labels and annotations are whatever the alert said. Pure.
"""

import collections.abc as cabc
import dataclasses
import html

from oncall_operator.api import incident

TIMELINE_SHOWN = 8
UPDATE_MAX = 2000
"""The longest status update the form takes (a timeline entry holds 4096 characters)."""
_STYLE = """
body{font:16px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#172b4d}
main{max-width:34rem;margin:0 auto;padding:1rem}
h1{font-size:1.25rem;margin:.25rem 0 .5rem;overflow-wrap:anywhere}
.sev{display:inline-block;padding:.1rem .5rem;border-radius:.25rem;color:#fff;font-weight:600;font-size:.85rem}
.critical{background:#c9372c}.warning{background:#b65c02}.info{background:#0c66e4}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem;margin:.75rem 0}
dt{color:#626f86}dd{margin:0;overflow-wrap:anywhere}
.notice{padding:.75rem;border-radius:.4rem;background:#dcfff1;margin:.75rem 0}
.notice.refused{background:#ffeceb}
form{margin:.5rem 0}
button{width:100%;padding:.9rem;font-size:1.05rem;border:0;border-radius:.4rem;color:#fff;background:#0c66e4}
button.resolve{background:#1f845a}
textarea{width:100%;box-sizing:border-box;min-height:5rem;font:inherit}
ol{padding-left:1.25rem;font-size:.9rem}li{margin:.25rem 0;overflow-wrap:anywhere}
time{color:#626f86}
h2{font-size:1rem;margin:1rem 0 .25rem}
""".strip()


@dataclasses.dataclass(frozen=True)
class Button:
    action: str
    """``ack``, ``resolve`` or ``update`` (the CSS class and the form's id)."""
    label: str
    path: str
    """Where the form posts: the button's own signed path."""


def page(
    inc: incident.Incident,
    person: str,
    buttons: cabc.Sequence[Button],
    notice: str = "",
    refused: bool = False,
) -> str:
    """The Incident as ``person`` sees it, with ``notice`` (what just happened) on top."""
    status = inc.status or incident.IncidentStatus()
    sev = inc.spec.severity.value
    rows = [
        ("Incident", f"{inc.metadata.namespace}/{inc.metadata.name}"),
        ("Phase", status.phase.value if status.phase else "Pending"),
        ("Target", status.target),
        ("On call", status.on_call),
        ("Acknowledged by", _who(status.acknowledged_by, status.acknowledged_via)),
        ("Resolved by", _who(status.resolved_by, status.resolved_via)),
        ("You are", person),
    ]
    summary = inc.spec.source.annotations.get("summary", "") or inc.spec.description
    body = [
        f'<span class="sev {_e(sev)}">{_e(sev.upper())}</span>',
        f"<h1>{_e(inc.spec.title)}</h1>",
    ]
    if notice:
        body.append(f'<p class="notice{" refused" if refused else ""}">{_e(notice)}</p>')
    if summary:
        body.append(f'<p class="summary">{_e(summary)}</p>')
    body.append("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v) + "</dl>")
    for button in buttons:
        body.append(_form(button))
    entries = status.timeline[-TIMELINE_SHOWN:][::-1]
    if entries:
        items = "".join(
            f'<li><time datetime="{_e(e.at.isoformat())}">{_e(e.at.strftime("%H:%M:%S"))}</time> '
            f"<b>{_e(e.type)}</b> {_e(e.message)}</li>"
            for e in entries
        )
        body.append(f'<h2>Latest</h2><ol class="timeline">{items}</ol>')
    return _document(f"{sev.upper()}: {inc.spec.title}", "\n".join(body))


def refusal(sentence: str) -> str:
    """A page that says why a link does not act, and nothing about any Incident."""
    return _document("Link refused", f'<h1>Link refused</h1><p class="notice refused">{_e(sentence)}</p>')


def _form(button: Button) -> str:
    field = ""
    if button.action == "update":
        field = f'<textarea name="update" maxlength="{UPDATE_MAX}" required placeholder="What is happening"></textarea>'
    return (
        f'<form method="post" action="{_e(button.path)}" id="{_e(button.action)}">{field}'
        f'<button type="submit" class="{_e(button.action)}">{_e(button.label)}</button></form>'
    )


def _who(by: str, via: str) -> str:
    return f"{by} (via {via})" if by and via else by


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
