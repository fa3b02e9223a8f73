"""Tables for the tenancy rules (domain/tenancy.py): the values a hostile namespace user would try."""

import pathlib

import pydantic
import pytest
import yaml

from oncall_operator.api import incident, policy
from oncall_operator.domain import alert_incident, checks, tenancy
from tests.unit import test_alerts

PD = tenancy.PAGERDUTY_ENDPOINTS
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://events.pagerduty.com/v2/enqueue", PD, True),
        ("https://events.eu.pagerduty.com/v2/enqueue", PD, True),
        ("https://EVENTS.PagerDuty.com./v2/enqueue", PD, True),  # case and the root dot are the same host
        ("https://events.pagerduty.com:443/v2/enqueue", PD, True),
        ("https://evil.example/", PD, False),
        ("http://events.pagerduty.com/v2/enqueue", PD, False),  # not https
        ("https://events.pagerduty.com:8443/v2/enqueue", PD, False),
        ("https://events.pagerduty.com.evil.io/v2/enqueue", PD, False),
        ("https://evil.io/events.pagerduty.com", PD, False),
        ("https://events.pagerduty.com@evil.io/", PD, False),  # user info: the host is evil.io
        ("https://user:pw@events.pagerduty.com/", PD, False),
        ("https://\u0435vents.pagerduty.com/v2/enqueue", PD, False),  # Cyrillic ie for the e
        ("https://events.pagerduty.com\u200b/", PD, False),  # zero-width space
        ("https://xn--vents-3ve.pagerduty.com/", PD, False),  # punycode of a lookalike
        ("https://127.0.0.1/v2/enqueue", PD, False),
        ("https://[::1]/v2/enqueue", PD, False),
        ("https://169.254.169.254/latest/meta-data", PD, False),
        ("ftp://events.pagerduty.com/", PD, False),
        ("https://[::1/", PD, False),  # not a URL
        ("http://127.0.0.1:18080/v2/enqueue", ("http://127.0.0.1:*",), True),  # an administrator's explicit choice
        ("http://127.0.0.1:18080/v2/enqueue", ("http://127.0.0.1",), False),  # only the default port
        ("https://127.0.0.1:18080/v2/enqueue", ("http://127.0.0.1:*",), False),  # the scheme is part of it
        ("https://events.pagerduty.com/", (), False),
    ],
)
def test_pagerduty_endpoint(url: str, allowed: tuple[str, ...], ok: bool) -> None:
    refused = tenancy.endpoint_refusal(url, allowed)
    assert (refused is None) == ok, refused
    if refused:
        assert "ONCALL_PAGERDUTY_ENDPOINTS" in refused or "not" in refused


@pytest.mark.parametrize(
    ("host", "port", "allowed", "ok"),
    [
        ("smtp.valeo-erp.com", 587, ("smtp.valeo-erp.com",), True),
        ("SMTP.valeo-erp.com.", 465, ("smtp.valeo-erp.com",), True),
        ("smtp.valeo-erp.com", 25, ("smtp.valeo-erp.com:587",), False),
        ("smtp.valeo-erp.com", 587, ("smtp.valeo-erp.com:587",), True),
        ("smtp.valeo-erp.com", 587, (), False),  # secure default: no relay until one is listed
        ("127.0.0.1", 25, ("smtp.valeo-erp.com",), False),
        ("127.0.0.1", 25, (), False),
        ("10.0.0.7", 25, ("smtp.valeo-erp.com",), False),
        ("smtp.valeo-erp.com.evil.io", 587, ("smtp.valeo-erp.com",), False),
        ("smtp.val\u0435\u043e-erp.com", 587, ("smtp.valeo-erp.com",), False),  # Cyrillic ie and o
        ("smtp.valeo-erp.com\r\nRCPT TO:<x@evil.io>", 587, ("smtp.valeo-erp.com",), False),
        ("127.0.0.1", 2525, ("127.0.0.1",), True),  # listed on purpose (the tests' local inbox)
    ],
)
def test_smtp_host(host: str, port: int, allowed: tuple[str, ...], ok: bool) -> None:
    refused = tenancy.smtp_refusal(host, port, allowed)
    assert (refused is None) == ok, refused


@pytest.mark.parametrize(
    ("own", "target", "ok"),
    [("shop", "", True), ("shop", "shop", True), ("shop", "billing", False), ("shop", "kube-system", False)],
)
def test_target_stays_in_the_incidents_namespace(own: str, target: str, ok: bool) -> None:
    assert (tenancy.target_refusal(own, target) is None) == ok


@pytest.mark.parametrize(
    ("own", "ref", "ok"),
    [
        ("shop", None, True),
        ("shop", "shop", True),
        ("shop", "oncall-system", True),  # the defaults an administrator wrote
        ("shop", "billing", False),  # another tenant's Runbook or channels
        ("shop", "kube-system", False),
    ],
)
def test_refs_cross_only_into_the_operators_namespace(own: str, ref: str | None, ok: bool) -> None:
    assert (tenancy.ref_refusal("spec.runbookRef.namespace", own, ref, "oncall-system") is None) == ok


@pytest.mark.parametrize(
    ("labels", "ok"),
    [
        ({"oncall.dev/notifier": "true"}, True),
        (None, False),
        ({}, False),
        ({"oncall.dev/notifier": "True"}, False),
        ({"oncall.dev/notifier": "yes"}, False),
        ({"oncall.dev/notifiers": "true"}, False),
    ],
)
def test_secrets_opt_in(labels: dict[str, str] | None, ok: bool) -> None:
    assert (tenancy.secret_refusal("db-password", labels) is None) == ok


@pytest.mark.parametrize("name", ["kube-system/aws-auth", "../aws-auth", "billing.pd", "Pd", ""])
def test_a_secret_ref_names_no_other_namespace(name: str) -> None:
    """``secretRef`` has no namespace field, and its name cannot smuggle one: the schema refuses it."""
    channel = {"name": "pd", "type": "PagerDuty", "secretRef": {"name": name, "key": "k"}}
    if name == "billing.pd":  # a DNS subdomain name is a valid Secret name, still in the policy's namespace
        assert policy.Channel.model_validate(channel).secret_ref is not None
        return
    with pytest.raises(pydantic.ValidationError):
        policy.Channel.model_validate(channel)


def _policy(channels: list[dict[str, object]]) -> policy.EscalationPolicySpec:
    level = {"name": "l1", "after": "0m", "targets": [{"user": "a"}], "channels": [channels[0]["name"]]}
    severity = {"severity": "critical", "response": "Page", "responseTime": "5m", "channels": [channels[0]["name"]]}
    return policy.EscalationPolicySpec.model_validate(
        {"levels": [level], "channels": channels, "severities": [severity]}
    )


def test_policy_ready_reports_what_the_notifier_would_refuse() -> None:
    spec = _policy(
        [
            {
                "name": "pd",
                "type": "PagerDuty",
                "secretRef": {"name": "pd", "key": "k"},
                "endpoint": "https://evil.example/",
            },
            {"name": "mail", "type": "Email", "email": {"smtpHost": "127.0.0.1", "from": "a@b.c"}},
            {"name": "slack", "type": "Slack", "secretRef": {"name": "db", "key": "password"}},
        ]
    )
    secrets = {"pd": frozenset({"k"}), "db": frozenset({"password"})}
    verdict = checks.check_policy(spec, {}, secrets, not_opted_in=frozenset({"db"}), trust=tenancy.Trust())
    assert not verdict.ok and verdict.reason == "ChannelNotAllowed"
    assert "spec.channels[0]" in verdict.message and "evil.example" in verdict.message
    assert "spec.channels[1]" in verdict.message and "127.0.0.1" in verdict.message
    assert "SecretNotOptedIn" not in verdict.message and "'db' is not labelled oncall.dev/notifier" in verdict.message


def test_incident_ready_names_the_cross_namespace_fields() -> None:
    spec = incident.IncidentSpec.model_validate(
        {
            "title": "t",
            "severity": "critical",
            "target": {"kind": "Deployment", "namespace": "billing", "name": "api"},
            "runbookRef": {"name": "rb", "namespace": "billing"},
            "escalationPolicyRef": {"name": "p", "namespace": "oncall-system"},
        }
    )
    verdict = checks.check_incident(
        spec,
        {"p": _policy([{"name": "x", "type": "Webhook", "secretRef": {"name": "s", "key": "k"}}])},
        {"rb": None},
        "shop",
        "oncall-system",
    )  # type: ignore[dict-item]
    assert not verdict.ok and verdict.reason == "CrossNamespace"
    assert "spec.target.namespace" in verdict.message and "spec.runbookRef.namespace" in verdict.message
    assert "spec.escalationPolicyRef" not in verdict.message  # the operator's namespace is allowed


def test_the_admission_policy_protects_every_status_field_a_user_may_not_write() -> None:
    """A new IncidentStatus field is the operator's unless the policy says otherwise: keep the list whole."""
    user_fields = {
        "phase",
        "acknowledgedBy",
        "acknowledgedAt",
        "resolvedBy",
        "resolvedAt",
        "approvals",
        "checklist",
        "timeline",
    }
    fields = {f.alias or f.serialization_alias or name for name, f in incident.IncidentStatus.model_fields.items()}
    text = (REPO / "deploy/helm/oncall-operator/files/admission-policies.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    rules = " ".join(v["expression"] for v in docs[0]["spec"]["validations"])
    for name in fields - user_fields:
        assert f"object.status.{name} == oldObject.status.{name}" in rules, name


@pytest.mark.parametrize(
    ("fingerprints", "closes"),
    [
        (["f1"], True),  # the alert that fired
        (["f1", "f7"], True),  # it, and one more the group gained meanwhile
        (["f7"], False),  # a fingerprint never seen firing: forged, or another group's
        (["f7", "f8", "f9"], False),
    ],
)
def test_a_resolved_notification_closes_only_alerts_seen_firing(fingerprints: list[str], closes: bool) -> None:
    spec, st = test_alerts.opened()
    payload = test_alerts.parsed("resolved", [test_alerts.alert("resolved", fp=fp) for fp in fingerprints])
    done = alert_incident.record(spec, st, payload, test_alerts.at(20))
    assert done is not None
    assert (done.phase == incident.Phase.RESOLVED) == closes
    if not closes:  # said once on the Incident, and a repeat writes nothing
        assert done.timeline[-1].type == alert_incident.RESOLVE_IGNORED
        assert alert_incident.record(spec, done, payload, test_alerts.at(21)) is None


@pytest.mark.parametrize(
    ("label", "scope", "home", "acts"),
    [
        ("shop", ("shop",), "shop", True),  # the alert's namespace, watched: the Incident lives and acts there
        ("billing", ("shop",), "oncall-system", False),  # not watched: the operator's namespace, and no action
        ("kube-system", ("shop",), "oncall-system", False),
    ],
)
def test_an_alert_incident_lives_in_the_alerts_namespace_and_acts_only_there(
    label: str, scope: tuple[str, ...], home: str, acts: bool
) -> None:
    payload = test_alerts.parsed(namespace=label, deployment="api")
    opening = alert_incident.opening(payload, [], "oncall-system", scope)
    assert opening.namespace == home and opening.spec.target.namespace == label
    assert (tenancy.target_refusal(opening.namespace, opening.spec.target.namespace) is None) == acts


@pytest.mark.parametrize(
    ("channel", "refused"),
    [
        ({"type": "Twilio", "endpoint": "https://api.twilio.com"}, False),
        ({"type": "Twilio"}, False),  # no override: Twilio's own API
        ({"type": "Twilio", "endpoint": "https://evil.example/2010-04-01"}, True),  # the AuthToken would go there
        ({"type": "Twilio", "endpoint": "https://api.twilio.com.evil.io"}, True),
        ({"type": "Twilio", "endpoint": "http://api.twilio.com"}, True),  # not https
        ({"type": "SlackBot", "endpoint": "https://slack.com/api"}, False),
        ({"type": "SlackBot", "endpoint": "https://slack.com@evil.io/api"}, True),  # the bot token would go there
        ({"type": "SlackBot", "endpoint": "https://127.0.0.1:8443/api"}, True),
    ],
)
def test_twilio_and_slack_bot_endpoints_are_on_the_api_allowlist(channel: dict[str, str], refused: bool) -> None:
    body = {"name": "c", "secretRef": {"name": "s", "key": "k"}, **channel}
    verdict = tenancy.channel_refusal(policy.Channel.model_validate(body), tenancy.Trust())
    assert (verdict is not None) == refused, verdict
    if refused:  # the allowlist named, or the URL itself refused (user info, not a plain host)
        assert "ONCALL_API_ENDPOINTS" in str(verdict) or "plain host name" in str(verdict), verdict
