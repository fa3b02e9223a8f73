"""`kubectl oncall`, run through the real kubectl (plugin discovery on PATH), on the real API."""

import json
import pathlib
import subprocess

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.conftest import Kubectl
from tests.e2e.plugin_support import env as plugin_env
from tests.e2e.plugin_support import kubectl_oncall, open_incident

pytestmark = pytest.mark.usefixtures("crds")


def oncall(kubectl: Kubectl, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl oncall -n NAMESPACE ...`: the namespace before the verb."""
    return kubectl_oncall(kubectl, "-n", namespace, *args)


def opened(kubectl: Kubectl, namespace: str) -> None:
    open_incident(kubectl, namespace)


def test_kubectl_lists_the_plugin(kubectl: Kubectl) -> None:
    listed = subprocess.run(
        [str(kubectl.binary), "plugin", "list"], capture_output=True, text=True, env=plugin_env(kubectl.kubeconfig)
    ).stdout
    assert "kubectl-oncall" in listed


def test_ack_then_resolve_record_the_authenticated_user(kubectl: Kubectl, namespace: str) -> None:
    opened(kubectl, namespace)
    ack = oncall(kubectl, namespace, "ack", "api-down")
    assert ack.returncode == 0, ack.stderr
    assert ack.stdout.strip() == 'incident "api-down" acknowledged by admin'
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert (status["phase"], status["acknowledgedBy"]) == ("Acknowledged", "admin")
    again = oncall(kubectl, namespace, "ack", "api-down")
    assert again.returncode == 0 and "already acknowledged by admin" in again.stdout
    done = oncall(kubectl, namespace, "resolve", "api-down", "--note", "rolled back release 42")
    assert done.returncode == 0, done.stderr
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert (status["phase"], status["resolvedBy"]) == ("Resolved", "admin")
    timeline = oncall(kubectl, namespace, "timeline", "api-down").stdout
    assert "Acknowledged by admin" in timeline and "Resolved by admin: rolled back release 42" in timeline
    late = oncall(kubectl, namespace, "ack", "api-down")
    assert late.returncode == 1 and late.stderr == 'error: incident "api-down" is already resolved (by admin)\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ack", "nope"), 'error: incident "nope" not found in namespace'),
        (("timeline", "nope"), 'error: incident "nope" not found in namespace'),
        (("who", "nope"), 'error: schedule "nope" not found in namespace'),
        (
            ("override", "valeo-oncall", "--user", "Ghost", "--from", "now", "--to", "now+2h"),
            'error: "Ghost" is not a member',
        ),
        (("override", "valeo-oncall", "--user", "Backend Lead", "--from", "now+2h", "--to", "now"), "error: --to ("),
        (
            ("override", "valeo-oncall", "--user", "Backend Lead", "--from", "soon", "--to", "now"),
            "error: 'soon' is not a time",
        ),
        (
            (
                "override",
                "valeo-oncall",
                "--user",
                "Backend Lead",
                "--role",
                "tertiary",
                "--from",
                "now",
                "--to",
                "now+1h",
            ),
            'error: schedule "valeo-oncall" has no role "tertiary"',
        ),
    ],
)
def test_errors_are_one_line_and_non_zero(
    kubectl: Kubectl, namespace: str, args: tuple[str, ...], message: str
) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(kubectl, namespace, *args)
    assert proc.returncode == 1
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_override_is_added_and_shown_by_who(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(
        kubectl,
        namespace,
        "override",
        "valeo-oncall",
        "--user",
        "SRE Engineer 2",
        "--from",
        "now",
        "--to",
        "now+2h",
        "--reason",
        "swap",
    )
    assert proc.returncode == 0, proc.stderr
    [override] = kubectl.json("get", "ocs/valeo-oncall", "-n", namespace)["spec"]["overrides"]
    assert (override["role"], override["user"], override["reason"]) == ("primary", "SRE Engineer 2", "swap")
    who = oncall(kubectl, namespace, "who")
    assert who.returncode == 0, who.stderr
    primary = next(line for line in who.stdout.splitlines() if line.strip().startswith("primary"))
    assert "SRE Engineer 2" in primary


def test_calendar_feed_parses_and_agrees_with_who(kubectl: Kubectl, namespace: str) -> None:
    import datetime as dt

    import icalendar
    import recurring_ical_events

    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    proc = oncall(kubectl, namespace, "calendar", "valeo-oncall", "--days", "30")
    assert proc.returncode == 0, proc.stderr
    calendar = icalendar.Calendar.from_ical(proc.stdout)
    now = dt.datetime.now(dt.UTC)
    current = recurring_ical_events.of(calendar).at((now.year, now.month, now.day, now.hour))
    [primary] = [str(e["SUMMARY"]) for e in current if str(e["SUMMARY"]).startswith("primary: ")]
    person = primary.removeprefix("primary: ")
    who = oncall(kubectl, namespace, "who", "valeo-oncall").stdout
    line = next(x for x in who.splitlines() if x.strip().startswith("primary"))
    assert line.split()[1:3] == person.split()[:2]  # the same person, from two independent readings


VERBS = [
    ("who",),
    ("who", "valeo-oncall", "--at", "2026-03-30T07:30:00Z"),
    ("incidents",),
    ("timeline", "api-down"),
    ("calendar", "valeo-oncall", "--days", "3"),
    ("override", "valeo-oncall", "--user", "SRE Engineer 1", "--from", "now", "--to", "now+1h"),
    ("ack", "api-down"),
    ("resolve", "api-down", "--note", "fixed"),
]


@pytest.mark.parametrize("place", ["before", "after", "after-long"])
def test_every_verb_takes_the_namespace_before_or_after_it(kubectl: Kubectl, namespace: str, place: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    open_incident(kubectl, namespace)
    for verb in VERBS:
        flag = {"before": ["-n", namespace], "after": ["-n", namespace], "after-long": [f"--namespace={namespace}"]}
        line = [*flag[place], *verb] if place == "before" else [*verb, *flag[place]]
        proc = kubectl_oncall(kubectl, *line)
        assert proc.returncode == 0, (line, proc.stderr)
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert (status["acknowledgedBy"], status["resolvedBy"]) == ("admin", "admin")


def test_all_namespaces_lists_by_severity_then_age_with_json_and_wide(kubectl: Kubectl, namespace: str) -> None:
    other = f"{namespace}-b"
    kubectl.run("create", "namespace", other)
    try:
        open_incident(kubectl, namespace, "disk-full", severity="warning")
        open_incident(kubectl, namespace, "api-down", severity="critical")
        open_incident(kubectl, other, "db-down", severity="critical")  # the same second: the namespace decides
        kubectl.run("apply", "-n", other, "-f", str(REPO / "examples/schedule.yaml"))
        table = kubectl_oncall(kubectl, "incidents", "-A")
        assert table.returncode == 0, table.stderr
        rows = [line.split()[:4] for line in table.stdout.splitlines()]
        assert rows[0] == ["NAMESPACE", "NAME", "SEVERITY", "PHASE"]
        mine = [r for r in rows[1:] if r[0] in (namespace, other)]
        assert [(r[1], r[2]) for r in mine] == [
            ("api-down", "critical"),  # critical first, then the older first (a tie: by namespace)
            ("db-down", "critical"),
            ("disk-full", "warning"),
        ]
        wide = kubectl_oncall(kubectl, "-o", "wide", "incidents", "--all-namespaces").stdout.splitlines()[0].split()
        assert wide[-4:] == ["TARGET", "RUNBOOK", "TITLE"][-4:] or "RUNBOOK" in wide
        listed = json.loads(kubectl_oncall(kubectl, "incidents", "-n", namespace, "-o", "json").stdout)
        assert [i["metadata"]["name"] for i in listed["items"]] == ["api-down", "disk-full"]
        who = kubectl_oncall(kubectl, "who", "-A", "-o", "yaml")
        assert who.returncode == 0 and f"namespace: {other}" in who.stdout, who.stderr
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)


def test_context_and_kubeconfig_flags_after_the_verb(kubectl: Kubectl, namespace: str, tmp_path: pathlib.Path) -> None:
    """A second context (another default namespace) in another kubeconfig, chosen with --context."""
    open_incident(kubectl, namespace)
    config = yaml.safe_load(kubectl.kubeconfig.read_text())
    first = config["contexts"][0]
    config["contexts"].append({"name": "team-b", "context": {**first["context"], "namespace": namespace}})
    second = tmp_path / "kubeconfig"
    second.write_text(yaml.safe_dump(config))
    listed = kubectl_oncall(kubectl, "incidents", "--kubeconfig", str(second), "--context", "team-b")
    assert listed.returncode == 0 and "api-down" in listed.stdout, listed.stderr
    acked = kubectl_oncall(kubectl, "ack", "api-down", "--context=team-b", f"--kubeconfig={second}")
    assert acked.stdout.strip() == 'incident "api-down" acknowledged by admin', acked.stderr
    missing = kubectl_oncall(kubectl, "incidents", "--context", "nope", "--kubeconfig", str(second))
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1, missing.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [(("ack",), 2), (("frobnicate",), 2), (("ack", "x", "--bogus"), 2), (("ack", "x", "-o", "json"), 2)],
)
def test_usage_errors_are_one_line_and_exit_2(kubectl: Kubectl, args: tuple[str, ...], code: int) -> None:
    proc = kubectl_oncall(kubectl, *args)
    assert proc.returncode == code and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


def complete(kubectl: Kubectl, *words: str) -> tuple[list[str], str]:
    """``kubectl __complete oncall WORDS``: kubectl runs kubectl_complete-oncall and answers like cobra."""
    proc = subprocess.run(
        [str(kubectl.binary), "__complete", "oncall", *words],
        capture_output=True,
        text=True,
        env=plugin_env(kubectl.kubeconfig),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return [line.split("\t")[0] for line in lines[:-1]], lines[-1]


def test_completion_through_kubectl(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    open_incident(kubectl, namespace)
    verbs, directive = complete(kubectl, "")
    assert {"who", "incidents", "ack", "board", "diff", "completion"} <= set(verbs) and directive == ":4"
    assert complete(kubectl, "ack", "-n", namespace, "") == (["api-down"], ":4")
    assert complete(kubectl, "-n", namespace, "who", "val") == (["valeo-oncall"], ":4")
    assert namespace in complete(kubectl, "incidents", "-n", "")[0]
    assert complete(kubectl, "incidents", "-o", "") == (["json", "yaml", "wide"], ":4")
    assert "--all-namespaces" in complete(kubectl, "incidents", "--")[0]
    script = kubectl_oncall(kubectl, "completion", "bash")
    assert script.returncode == 0 and "complete -F _kubectl_oncall kubectl-oncall" in script.stdout


def test_diff_against_the_live_schedule(kubectl: Kubectl, namespace: str, tmp_path: pathlib.Path) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    changed = yaml.safe_load((REPO / "examples/schedule.yaml").read_text())
    changed["spec"]["overrides"] = [
        {"role": "primary", "user": "Backend Lead", "start": "2026-03-28T20:00:00", "end": "2026-03-29T10:00:00"}
    ]
    new = tmp_path / "schedule.yaml"
    new.write_text(yaml.safe_dump(changed))
    window = ("--from", "2026-03-23T00:00:00Z", "--days", "14")
    proc = kubectl_oncall(kubectl, "diff", "-f", str(new), "-n", namespace, *window)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[2:] == [
        "@@ primary: Sat 2026-03-28 20:00 CET -> Sun 2026-03-29 10:00 CEST (13h) @@",
        "-SRE Engineer 2",
        "+Backend Lead",
    ]
    same = kubectl_oncall(kubectl, "diff", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"), *window)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    broken = kubectl_oncall(kubectl, "diff", "-f", str(tmp_path / "missing.yaml"), "-n", namespace)
    assert broken.returncode == 4 and broken.stderr.count("\n") == 1, broken.stderr


def test_diff_of_a_two_week_swap_and_of_a_policy_between_files(kubectl: Kubectl, tmp_path: pathlib.Path) -> None:
    """Two files, no cluster needed for schedules; a policy's schedules come from the files."""
    handbook = yaml.safe_load((REPO / "examples/schedule.yaml").read_text())
    swapped = yaml.safe_load((REPO / "examples/schedule.yaml").read_text())
    swapped["spec"]["overrides"] = [
        {"role": "primary", "user": "DevOps Lead", "start": "2026-03-23T09:00:00", "end": "2026-03-30T09:00:00"},
        {"role": "primary", "user": "SRE Engineer 2", "start": "2026-03-30T09:00:00", "end": "2026-04-06T09:00:00"},
    ]
    policy = yaml.safe_load((REPO / "examples/escalation-policy.yaml").read_text())
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump_all([handbook, policy]))
    new.write_text(yaml.safe_dump_all([swapped, policy]))
    proc = kubectl_oncall(kubectl, "diff", str(old), str(new), "--from", "2026-03-20T00:00:00Z", "--days", "21")
    assert proc.returncode == 1, proc.stderr
    hunks = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert hunks == [
        "@@ primary: Mon 2026-03-23 09:00 CET -> Mon 2026-03-30 09:00 CEST (167h) @@",
        "@@ primary: Mon 2026-03-30 09:00 CEST -> Mon 2026-04-06 09:00 CEST (168h) @@",
        "@@ level-1 (after 0): Mon 2026-03-23 09:00 CET -> Mon 2026-03-30 09:00 CEST (167h) @@",
        "@@ level-1 (after 0): Mon 2026-03-30 09:00 CEST -> Mon 2026-04-06 09:00 CEST (168h) @@",
        "@@ level-2 (after 15m): Mon 2026-03-23 09:00 CET -> Mon 2026-03-30 09:00 CEST (167h) @@",
        "@@ level-2 (after 15m): Mon 2026-03-30 09:00 CEST -> Mon 2026-04-06 09:00 CEST (168h) @@",
    ]
