"""Lists printed as kubectl prints them: an aligned table with upper-case headers, or ``-o json|yaml``.

``-o wide`` adds the columns marked wide; json and yaml print a ``List`` of the items as the
API server returned them (or, for computed lists such as ``who``, the computed records).
"""

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import yaml

Row = Sequence[str]


def table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    """Columns three spaces apart, like ``kubectl get``; the last column is not padded."""
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def items(records: list[dict[str, Any]], fmt: str) -> str:
    body = {"apiVersion": "v1", "kind": "List", "items": records}
    if fmt == "yaml":
        return yaml.safe_dump(body, sort_keys=False, allow_unicode=True).rstrip("\n")
    return json.dumps(body, indent=2, ensure_ascii=False)


def age(since: dt.datetime | None, now: dt.datetime) -> str:
    """``45s``, ``12m``, ``3h``, ``5d``: kubectl's short ages."""
    if since is None:
        return "<unknown>"
    seconds = max(int((now - since).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
