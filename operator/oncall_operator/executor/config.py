"""What the operator reads from its environment, read in one place, with the defaults it runs on.

``oncall-operator run`` turns its flags into these variables (so the chart and a shell set the
same things); nothing else in the operator reads ``os.environ``.
"""

import dataclasses
import os

from oncall_operator.domain import tenancy


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


@dataclasses.dataclass(frozen=True)
class Config:
    namespace: str = "oncall-system"
    """The operator's own namespace (ONCALL_NAMESPACE): defaults, the intake token, alerts without a namespace."""
    recheck_seconds: float = 30.0
    """How often Schedules, Policies and Runbooks are checked again, and Mitigated OOM Incidents settled."""
    tick_seconds: float = 5.0
    """How often each open Incident's escalation is looked at (ONCALL_TICK_SECONDS)."""
    watch_namespaces: tuple[str, ...] = ()
    """The ``run --namespace`` patterns (Kopf globs); empty means cluster-wide."""
    dry_run: bool = False
    """Operator-wide dry-run of remediations (ONCALL_DRY_RUN): plan and record, write nothing."""
    http_address: str = "0.0.0.0:8080"
    """Where the intake, /healthz, /readyz and /metrics are served (ONCALL_HTTP_ADDRESS)."""
    intake_token_secret: str = ""
    """The Secret (key ``token``, in ``namespace``) with the intake's bearer token (ONCALL_INTAKE_TOKEN_SECRET)."""
    peering: str | None = None
    """The peering object (ONCALL_PEERING); None runs standalone: one process, always active."""
    peering_lifetime: int = 15
    """Seconds after its last keep-alive that a silent replica still counts as alive (ONCALL_PEERING_LIFETIME)."""
    pagerduty_endpoints: tuple[str, ...] = tenancy.PAGERDUTY_ENDPOINTS
    """Origins a PagerDuty channel's ``endpoint`` may name (ONCALL_PAGERDUTY_ENDPOINTS, comma-separated)."""
    smtp_hosts: tuple[str, ...] = ()
    """SMTP relays an Email channel may use, ``host`` or ``host:port`` (ONCALL_SMTP_HOSTS); empty: none."""
    api_endpoints: tuple[str, ...] = tenancy.API_ENDPOINTS
    """Origins a Twilio or Slack bot channel's ``endpoint`` may name (ONCALL_API_ENDPOINTS, comma-separated)."""
    link_key_secret: str = ""
    """The Secret (key ``key``, in ``namespace``) that signs answer links (ONCALL_LINK_KEY_SECRET); empty: no links."""
    external_url: str = ""
    """The operator's HTTP server as people reach it, e.g. behind an Ingress (ONCALL_EXTERNAL_URL); empty: no links."""
    slack_signing_secret: str = ""
    """The Secret (key ``signingSecret``, in ``namespace``, labelled as a notifier's) with the Slack app's
    signing secret, for its buttons (ONCALL_SLACK_SIGNING_SECRET); empty: /slack/interactions answers 404."""
    pagerduty_webhook_secret: str = ""
    """The Secret (key ``webhookSecret``, in ``namespace``, labelled as a notifier's) of the PagerDuty v3
    webhook subscription (ONCALL_PAGERDUTY_WEBHOOK_SECRET); empty: /pagerduty/webhooks answers 404."""
    twilio_auth_secret: str = ""
    """The Secret (key ``authToken``, in ``namespace``, labelled as a notifier's) with the Twilio account's auth
    token, for SMS replies and "press 1" (ONCALL_TWILIO_AUTH_SECRET); empty: /twilio/... answer 404."""
    new_incidents_burst: float = 500.0
    """New alert Incidents a namespace may open at once (ONCALL_NEW_INCIDENTS_BURST): a storm's first wave."""
    new_incidents_per_minute: float = 120.0
    """New alert Incidents a namespace may open per minute after its burst (ONCALL_NEW_INCIDENTS_PER_MINUTE)."""
    max_open_incidents_per_namespace: int = 2000
    """Open Incidents at which a namespace opens no new one (ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE; 0: no cap)."""
    pod: str = ""
    """The pod this process runs in (POD_ID, the chart's downward API); empty: the host name stands for it."""

    def __post_init__(self) -> None:
        # a zero or negative rate would refuse every new Incident (or divide by zero): say which setting
        if not (self.new_incidents_burst >= 1 and self.new_incidents_per_minute > 0):
            raise ValueError(
                "ONCALL_NEW_INCIDENTS_BURST must be at least 1 and ONCALL_NEW_INCIDENTS_PER_MINUTE above 0; got "
                f"{self.new_incidents_burst} and {self.new_incidents_per_minute}"
            )

    @classmethod
    def from_env(cls) -> "Config":
        env = os.environ.get
        return cls(
            namespace=env("ONCALL_NAMESPACE", cls.namespace),
            recheck_seconds=float(env("ONCALL_RECHECK_SECONDS", cls.recheck_seconds)),
            tick_seconds=float(env("ONCALL_TICK_SECONDS", cls.tick_seconds)),
            watch_namespaces=tuple(p for p in env("ONCALL_WATCH_NAMESPACES", "").split(",") if p),
            dry_run=_flag("ONCALL_DRY_RUN"),
            http_address=env("ONCALL_HTTP_ADDRESS", cls.http_address),
            intake_token_secret=env("ONCALL_INTAKE_TOKEN_SECRET", ""),
            peering=env("ONCALL_PEERING") or None,
            peering_lifetime=int(env("ONCALL_PEERING_LIFETIME", cls.peering_lifetime)),
            pagerduty_endpoints=_list(env("ONCALL_PAGERDUTY_ENDPOINTS")) or cls.pagerduty_endpoints,
            smtp_hosts=_list(env("ONCALL_SMTP_HOSTS")),
            api_endpoints=_list(env("ONCALL_API_ENDPOINTS")) or cls.api_endpoints,
            link_key_secret=env("ONCALL_LINK_KEY_SECRET", ""),
            external_url=env("ONCALL_EXTERNAL_URL", "").strip(),
            slack_signing_secret=env("ONCALL_SLACK_SIGNING_SECRET", ""),
            pagerduty_webhook_secret=env("ONCALL_PAGERDUTY_WEBHOOK_SECRET", ""),
            twilio_auth_secret=env("ONCALL_TWILIO_AUTH_SECRET", ""),
            new_incidents_burst=float(env("ONCALL_NEW_INCIDENTS_BURST", cls.new_incidents_burst)),
            new_incidents_per_minute=float(env("ONCALL_NEW_INCIDENTS_PER_MINUTE", cls.new_incidents_per_minute)),
            max_open_incidents_per_namespace=int(
                env("ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE", cls.max_open_incidents_per_namespace)
            ),
            pod=env("POD_ID", ""),
        )

    @property
    def trust(self) -> tenancy.Trust:
        """The tenancy rules' settings (:mod:`oncall_operator.domain.tenancy`)."""
        return tenancy.Trust(self.namespace, self.pagerduty_endpoints, self.smtp_hosts, self.api_endpoints)

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces


CONFIG = Config.from_env()
