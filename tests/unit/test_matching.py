"""Runbook choice for an OOM kill: matchers, namespace precedence, specificity; watch scope."""

import pytest

from oncall_operator.api import runbook
from oncall_operator.domain import matching

LABELS = matching.oom_labels(
    "shop", "web-abc", "app", "Deployment", "web", {"app.kubernetes.io/name": "web", "tier": "api"}, {"team": "pay"}
)


def rb(*matchers: tuple[str, str, str], event: str | None = "OOMKilled") -> runbook.RunbookSpec:
    trigger: dict[str, object] = {"matchers": [{"label": m[0], "op": m[1], "value": m[2]} for m in matchers]}
    if event:
        trigger["event"] = event
    else:
        trigger["alertName"] = "X"
    return runbook.RunbookSpec.model_validate({"trigger": trigger})


def test_labels_like_kube_state_metrics() -> None:
    assert LABELS["namespace"] == "shop" and LABELS["workload_type"] == "deployment"
    assert LABELS["label_app_kubernetes_io_name"] == "web" and LABELS["tier"] == "api" and LABELS["team"] == "pay"
    assert "app.kubernetes.io/name" not in LABELS


@pytest.mark.parametrize(
    ("matcher", "hit"),
    [
        (("namespace", "=", "shop"), True),
        (("namespace", "!=", "shop"), False),
        (("workload", "=~", "we.*"), True),
        (("workload", "=~", "we"), False),  # anchored like Alertmanager
        (("container", "!~", "side.*"), True),
        (("missing", "=", ""), True),
        (("namespace", "=~", "("), False),
    ],
)
def test_matchers(matcher: tuple[str, str, str], hit: bool) -> None:
    assert matching.matches(rb(matcher).trigger.matchers, LABELS) is hit


def test_workload_namespace_first_then_the_most_specific_then_by_name() -> None:
    candidates = [
        ("oncall-system", "default", rb()),
        ("shop", "b-generic", rb()),
        ("shop", "a-generic", rb()),
        ("shop", "specific", rb(("tier", "=", "api"))),
        ("shop", "other", rb(("tier", "=", "db"))),
        ("shop", "alerts-only", rb(event=None)),
        ("shop", "broken", None),
    ]
    pick = matching.select(candidates, runbook.TriggerEvent.OOM_KILLED, LABELS, ["shop", "oncall-system"])
    assert pick and pick.name == "specific"
    pick = matching.select(candidates[:3], runbook.TriggerEvent.OOM_KILLED, LABELS, ["shop", "oncall-system"])
    assert pick and pick.name == "a-generic"
    pick = matching.select(candidates[:1], runbook.TriggerEvent.OOM_KILLED, LABELS, ["shop", "oncall-system"])
    assert pick and (pick.namespace, pick.name) == ("oncall-system", "default")
    assert matching.select(candidates[4:], runbook.TriggerEvent.OOM_KILLED, LABELS, ["shop"]) is None


@pytest.mark.parametrize(
    ("patterns", "ns", "inside"),
    [
        ((), "anything", True),
        (("shop",), "shop", True),
        (("shop",), "bank", False),
        (("prod-*",), "prod-eu", True),
        (("*", "!kube-*"), "kube-system", False),
        (("!kube-system",), "shop", True),
    ],
)
def test_watch_scope(patterns: tuple[str, ...], ns: str, inside: bool) -> None:
    assert matching.in_scope(ns, patterns) is inside
