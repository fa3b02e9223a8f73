"""The plugin's command line as kubectl users type it, its completion answers and the board's timeline SVG."""

import datetime as dt
import pathlib

import pytest
import yaml

from oncall_operator.api import schedule
from oncall_operator.kubectl_plugin import args, completion, timeline_svg
from oncall_operator.kubectl_plugin.errors import USAGE, PluginError

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def parse(*words: str) -> dict[str, object]:
    found = vars(args.parse(args.parser(), list(words)))
    return {k: found[k] for k in ("command", "namespace", "all_namespaces", "context", "kubeconfig", "output")}


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("-n", "team-a", "ack", "x"), ("ack", "team-a", False, None, None, None)),
        (("ack", "x", "-n", "team-a"), ("ack", "team-a", False, None, None, None)),
        (("ack", "x", "--namespace=team-a"), ("ack", "team-a", False, None, None, None)),
        (("ack", "-nteam-a", "x"), ("ack", "team-a", False, None, None, None)),
        (("incidents", "-A", "-o", "wide"), ("incidents", None, True, None, None, "wide")),
        (("-o", "json", "--all-namespaces", "who"), ("who", None, True, None, None, "json")),
        (("who", "--context", "b", "--kubeconfig", "/k"), ("who", None, False, "b", "/k", None)),
        (("--context=b", "calendar", "s", "--kubeconfig=/k"), ("calendar", None, False, "b", "/k", None)),
    ],
)
def test_global_flags_go_anywhere(words: tuple[str, ...], expected: tuple[object, ...]) -> None:
    assert tuple(parse(*words).values()) == expected


@pytest.mark.parametrize(
    "words",
    [(), ("ack",), ("frobnicate",), ("ack", "x", "--bogus"), ("ack", "x", "-o", "json"), ("incidents", "-o", "xml")],
)
def test_usage_errors_are_code_2(words: tuple[str, ...]) -> None:
    with pytest.raises(PluginError) as error:
        parse(*words)
    assert error.value.code == USAGE and "\n" not in str(error.value)


def answer(*words: str) -> list[str]:
    return completion.answer(args.parser(), list(words)).splitlines()


def test_completion_answers_like_cobra() -> None:
    verbs = answer("")
    assert verbs[-1] == ":4" and "ack\tacknowledge an incident: stops the escalation" in verbs
    assert answer("in") == ["incidents\tthe open incidents, by severity then age", ":4"]
    assert answer("incidents", "-o", "") == ["json", "yaml", "wide", ":4"]
    assert "--all-namespaces\tevery namespace (who, incidents, board)" in answer("incidents", "--a")
    assert answer("diff", "-f", "") == [":0"]  # a file name: the shell's own completion
    assert answer("completion", "") == ["bash", "zsh", ":4"]
    assert answer("ack", "x", "") == [":4"]  # one incident per ack


def test_completion_script_registers_the_helper() -> None:
    assert "complete -F _kubectl_oncall kubectl-oncall" in completion.script("bash")
    assert completion.script("zsh").startswith("autoload -U +X bashcompinit && bashcompinit\n")


def test_timeline_draws_the_dst_day_shorter_and_names_local_times() -> None:
    spec = schedule.OnCallScheduleSpec.model_validate(yaml.safe_load((EXAMPLES / "schedule.yaml").read_text())["spec"])
    start = dt.datetime(2026, 3, 25, 23, tzinfo=dt.UTC)  # Thursday 26 March, 00:00 in Berlin
    svg = timeline_svg.render(spec, start, 7, now=dt.datetime(2026, 3, 27, 11, tzinfo=dt.UTC))
    assert "<title>primary: SRE Engineer 2 (shift), Thu 26 Mar 00:00 CET to Mon 30 Mar 09:00 CEST</title>" in svg
    assert svg.count('class="dst">23h, then CEST<') == 1
    assert svg.count('class="now"') == 1 and 'class="gap"' not in svg


def test_timeline_hatches_a_gap_where_nobody_is_on_call() -> None:
    spec = schedule.OnCallScheduleSpec.model_validate(
        {
            "timeZone": "Europe/Berlin",
            "roles": [
                {"name": "db", "layers": [{"name": "l", "rotation": {"participants": ["Ana"], "start": "2026-03-27"}}]}
            ],
        }
    )
    svg = timeline_svg.render(
        spec, dt.datetime(2026, 3, 25, 23, tzinfo=dt.UTC), 3, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    assert "<title>db: nobody on call (gap), Thu 26 Mar 00:00 CET to Fri 27 Mar 09:00 CET</title>" in svg
    assert 'class="now"' not in svg  # now is outside the window
