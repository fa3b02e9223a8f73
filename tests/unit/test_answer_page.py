"""The answer page escapes whatever an alert said, and each message carries its own recipient's links."""

import dataclasses
import datetime as dt
import html.parser

from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, schedule
from oncall_operator.domain import answer_links, answer_page, lifecycle, notices, phone

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.forms: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "form":
            self.forms.append(dict(attrs))


def hostile() -> incident.Incident:
    spec = incident.IncidentSpec.model_validate(
        {
            "title": EVIL,
            "severity": "critical",
            "description": EVIL,
            "source": {"type": "Alertmanager", "annotations": {"summary": EVIL}, "labels": {"x": EVIL}},
        }
    )
    status = lifecycle.opened(spec, NOW)
    lifecycle.add(status, NOW, "Note", EVIL, actor=EVIL)
    return incident.Incident(
        metadata={"namespace": "shop", "name": "checkout-down", "uid": "u1"}, spec=spec, status=status
    )


def test_hostile_titles_and_annotations_are_text_never_markup() -> None:
    buttons = [answer_page.Button("ack", "Acknowledge", "/answer/shop/checkout-down/a.1.2.3.4")]
    text = answer_page.page(hostile(), EVIL, buttons, notice=EVIL)
    parser = Tags()
    parser.feed(text)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert parser.forms == [{"method": "post", "action": "/answer/shop/checkout-down/a.1.2.3.4", "id": "ack"}]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'name="viewport"' in text  # phone-sized
    refused = answer_page.refusal(EVIL)
    assert "<script>" not in refused and "checkout" not in refused


def member(name: str, **kw: str) -> schedule.Member:
    return schedule.Member.model_validate({"name": name, **kw})


def links(person: schedule.Member, label: str, update: bool = False) -> list[notices.Link]:
    inc = answer_links.Incident("shop", "checkout-down", "1a2b3c4d-1")
    return answer_links.links("https://oncall.example.com", b"k" * 32, inc, person.name, NOW, label, update)


def note(kind: notices.NoticeKind, *who: schedule.Member) -> notices.Notice:
    return notices.Notice(
        kind=kind,
        namespace="shop",
        name="checkout-down",
        title="Checkout is down",
        severity="critical",
        timestamp=NOW,
        recipients=who,
        links=[("Grafana", "https://grafana.example.com")],
    )


def test_a_page_carries_its_recipients_links_and_a_resolution_none() -> None:
    ada, bob = member("Ada"), member("Bob")
    one = dispatch._with_links(note(notices.NoticeKind.PAGE, ada), links)
    assert [t for t, _ in one.links] == ["Acknowledge", "Resolve", "View", "Grafana"]
    key = b"k" * 32
    claim = answer_links.verify(
        key, one.links[0][1].rsplit("/", 1)[1], answer_links.Incident("shop", "checkout-down", "1a2b3c4d-1"), NOW
    )
    assert isinstance(claim, answer_links.Claim) and claim.person == "Ada"
    both = dispatch._with_links(note(notices.NoticeKind.REMINDER, ada, bob), links)
    assert [t for t, _ in both.links] == ["Acknowledge as Ada", "Acknowledge as Bob", "Grafana"]
    crowd = [member(f"P{i}") for i in range(30)]
    many = dispatch._with_links(note(notices.NoticeKind.PAGE, *crowd), links)
    assert len(many.links) == dispatch.SHARED_LINKS_MAX + 1  # bounded
    for kind in (notices.NoticeKind.RESOLVE, notices.NoticeKind.ACKNOWLEDGE, notices.NoticeKind.NOTIFY):
        assert dispatch._with_links(note(kind, ada), links).links == (("Grafana", "https://grafana.example.com"),)
    assert dispatch._with_links(note(notices.NoticeKind.PAGE, ada), None).links == note(notices.NoticeKind.PAGE).links
    status_update = dataclasses.replace(note(notices.NoticeKind.REMINDER, ada), step="status-update/L3/loop0/1")
    update = dispatch._with_links(status_update, links).links
    assert [t for t, _ in update][:2] == ["Post an update", "Acknowledge"]
    claim = answer_links.verify(
        key, update[0][1].rsplit("/", 1)[1], answer_links.Incident("shop", "checkout-down", "1a2b3c4d-1"), NOW
    )
    assert isinstance(claim, answer_links.Claim) and claim.action == answer_links.Action.UPDATE


def test_every_channel_keeps_its_size_with_the_links() -> None:
    long = dataclasses.replace(
        dispatch._with_links(note(notices.NoticeKind.PAGE, member("Ada")), links), title="x" * 5000, summary="y" * 9000
    )
    sms = phone.sms_text(long)
    ack = long.links[0][1]
    assert len(sms) <= phone.SMS_MAX and sms.endswith(f"Ack: {ack} or reply ACK")
    slack = notices.slack_payload(long)
    assert all(len(b["text"]["text"]) <= notices.SLACK_TEXT_MAX for b in slack["blocks"] if "text" in b)
    pd = notices.pagerduty_event(long, "R" * 32)
    assert pd["links"][0] == {"href": ack, "text": "Acknowledge"}
    mail = notices.email_message(long, "oncall@example.com", ["ada@example.com"]).get_content()
    assert f"- Acknowledge: {ack}" in mail
    assert notices.webhook_body(long)["links"][0] == {"text": "Acknowledge", "url": ack}
