"""What a page says, per channel: the title once, the alert's words and links, the runbook, the actions,
who else is paged; within each provider's limits; hostile text escaped, hostile URLs dropped."""

import datetime as dt
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from oncall_operator.api import incident, policy
from oncall_operator.api.schedule import Member
from oncall_operator.domain import escalation, links, notices, pages, phone

T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)
SPEC = policy.EscalationPolicySpec.model_validate(
    {
        "levels": [{"name": "l1", "after": "0", "targets": [{"user": "Ada"}]}],
        "channels": [{"name": "pd", "type": "PagerDuty", "secretRef": {"name": "pd", "key": "k"}}],
        "severities": [{"severity": "critical", "response": "Page", "channels": ["pd"]}],
        "links": [
            {"name": "Grafana", "url": "https://monitoring.example.com/d/api?var-namespace={namespace}"},
            {"name": "Alertmanager", "url": "https://alerts.example.com/#/alerts?filter=alertname%3D{alertname}"},
        ],
    }
)


def incident_with(**source: object) -> incident.Incident:
    status = incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        target="Deployment/shop/checkout",
        checklist=[incident.ChecklistItem(title="Check logs", done=True), incident.ChecklistItem(title="Rollback")],
        actions=[
            incident.ActionRecord(
                at=T0, action="scale-up", type="scale", state=incident.ActionState.APPLIED, before="2", after="4"
            )
        ],
        escalation=incident.Escalation(
            notifications=[
                incident.Notification(key="a", at=T0, level=1, user="Ada", channel="pd", result="Delivered"),
                incident.Notification(key="b", at=T0, level=2, user="Ada, Bob", channel="pd", result="Pending"),
                incident.Notification(key="c", at=T0, level=2, user="Cy", channel="pd", result="Failed"),
            ]
        ),
    )
    spec = incident.IncidentSpec(
        title="API error rate above SLO",
        severity="critical",
        source=incident.Source.model_validate(
            {"type": "Alertmanager", "alertName": "APIErrorRateSLOCritical", **source}
        ),
    )
    return incident.Incident.model_validate(
        {"metadata": {"name": "am-api", "namespace": "shop"}, "spec": spec.wire(), "status": status.wire()}
    )


ALERT = {
    "annotations": {
        "summary": "5% of requests fail",
        "description": "Errors since the 14:02 release",
        "runbook_url": "https://wiki.example.com/rb/api",
    },
    "generatorURL": "https://prometheus.example.com/graph?g0.expr=x",
    "externalURL": "https://alerts.example.com",
}
PAGE = escalation.Send("k", "page", 2, 0, ("pd",), (Member(name="Bob", slack="U0BOB0001"),), "Level 2 (l2).")


def test_a_page_carries_what_the_responder_needs() -> None:
    n = pages.notice(PAGE, incident_with(**ALERT), SPEC, T0)
    assert n.summary == "Level 2 (l2). 5% of requests fail" and n.description == "Errors since the 14:02 release"
    assert n.checklist == ("[x] Check logs", "[ ] Rollback")
    assert n.actions == ("scale: Applied 2 -> 4",)
    assert n.paged == ("Ada (level 1)", "Bob (level 2)")  # a failed page is nobody paged
    assert [t for t, _ in n.links] == ["Runbook", "Alert expression", "Alertmanager", "Grafana", "Alertmanager"]
    assert n.links[3][1] == "https://monitoring.example.com/d/api?var-namespace=shop"


def test_the_title_is_said_once_in_every_channel() -> None:
    n = pages.notice(PAGE, incident_with(**ALERT), SPEC, T0)
    slack = notices.slack_payload(n)["blocks"][0]["text"]["text"]
    assert slack.count("API error rate above SLO") == 1
    assert notices.pagerduty_event(n, "k")["payload"]["summary"].count("API error rate above SLO") == 1
    assert notices.email_message(n, "a@b.c", ["d@e.f"]).get_content().count("API error rate above SLO") == 1
    assert phone.sms_text(n).count("API error rate above SLO") == 1


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "https://x.example/<script>", "https://x.example/a|b", "https://x.example/ a", "ftp://x"],
)
def test_hostile_alert_urls_are_dropped(url: str) -> None:
    n = pages.notice(PAGE, incident_with(annotations={"runbook_url": url}, generatorURL=url), SPEC, T0)
    assert [t for t, _ in n.links] == ["Grafana", "Alertmanager"]


def test_placeholders_are_url_encoded_so_a_label_cannot_redirect_a_link() -> None:
    inc = incident_with(alertName="x&next=https://evil.example/")
    [_, (_, url)] = links.for_incident(SPEC, inc)
    assert urllib.parse.urlsplit(url).netloc == "alerts.example.com" and "evil.example%2F" in url
    assert links.unknown_placeholders("https://g/{namespace}/{nope}") == ["{nope}"]


def test_every_channel_stays_within_its_documented_limits() -> None:
    huge = "\u00e9<b>&" * 5000
    n = notices.Notice(
        kind=notices.NoticeKind.PAGE,
        namespace="ns",
        name="n" * 200,
        title=huge,
        severity="critical",
        timestamp=T0,
        summary=huge,
        description=huge,
        checklist=[huge] * 60,
        actions=[huge] * 60,
        paged=[huge] * 60,
        links=[("l", "https://x.example/" + "a" * 2000)] * 10,
    )
    slack = notices.slack_payload(n)
    assert len(slack["text"]) <= 3000 and len(slack["blocks"]) <= notices.SLACK_BLOCKS_MAX
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"] if b["type"] == "section")
    assert len(notices.pagerduty_event(n, "k")["payload"]["summary"]) <= notices.PAGERDUTY_SUMMARY_MAX
    sms = phone.sms_text(n)
    assert len(sms) <= phone.SMS_MAX and set(sms) <= set(phone.gsm_text(sms))
    twiml = phone.twiml(n)
    assert len(twiml) <= phone.TWIML_MAX and ET.fromstring(twiml).tag == "Response"
    assert "<b>" not in slack["blocks"][1]["text"]["text"]  # the description, escaped


def test_lists_are_bounded_and_the_cut_is_said() -> None:
    assert notices.bounded([str(i) for i in range(25)])[-1] == "\u2026 and 6 more"
    assert len(notices.bounded([str(i) for i in range(25)])) == notices.LIST_MAX


def test_sms_keeps_to_gsm_seven_and_two_segments() -> None:
    assert phone.gsm_text("Zürich [prod] {x} \u2014 \u201cok\u201d ~ |") == 'Zurich (prod) (x) - "ok" - /'
