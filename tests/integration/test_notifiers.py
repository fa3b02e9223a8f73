"""Notifiers against real local peers: Slack- and PagerDuty-like HTTP receivers, a webhook, an SMTP server.

The receivers validate every payload against the fields Slack (incoming webhooks, Block Kit)
and PagerDuty (Events API v2) document, and answer the way those services do. Faults are
real too: endpoints that answer 500, 429 with Retry-After, or accept the connection and never
say a word. The SMTP server is aiosmtpd with STARTTLS (a certificate made here) and AUTH.

The deadlines are measured on the event loop's clock, which ``looptime`` fast-forwards while
the loop only waits (the real sockets still connect and stay silent): the loop's time is the
clock the senders' deadlines run on, and a busy machine stretches neither of them.
"""

import asyncio
import contextlib
import dataclasses
import datetime as dt
import email
import email.message
import email.policy
import ipaddress
import json
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oncall_operator.adapters import notifiers
from oncall_operator.adapters.notifiers import smtp as smtp_notifier
from oncall_operator.api import base, policy
from oncall_operator.api.schedule import Member
from oncall_operator.domain import notices
from oncall_operator.domain.notices import Notice, NoticeKind
from tests.peers import LoopbackController, Peer

pytestmark = pytest.mark.timeout(30)

ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as PagerDuty requires
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
ANN = Member(name="Ann", email="ann@example.com", slack="U012AB3CD")
BOB = Member(name="Bob", email="bob@example.com")
SMTP_USER, SMTP_PASSWORD = "oncall", "s3cret:with:colons"


def make_notice(kind: NoticeKind = NoticeKind.PAGE, **kw: Any) -> Notice:
    fields: dict[str, Any] = {
        "kind": kind,
        "namespace": "shop",
        "name": "inc-7f3a",
        "title": "Checkout API OOMKilled",
        "severity": base.Severity.CRITICAL,
        "timestamp": T0,
        "summary": "container api was OOMKilled 3 times in 10m",
        "level": 1,
        "recipients": [ANN, BOB],
        "target": "Deployment shop/checkout",
        "links": [("Runbook", "https://wiki.example.com/rb")],
        "category": "OOMKilled",
    }
    fields.update(kw)
    return Notice(**fields)


class Sleeper:
    """Records backoff pauses instead of sleeping them."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


def fixed_jitter() -> float:
    return 1.0  # the top of the jitter range: pauses are exactly backoff * 2**n


FAST = notifiers.RetryPolicy(attempts=3, attempt_timeout=2.0, total_timeout=5.0, backoff=0.5)
SHORT = notifiers.RetryPolicy(attempts=3, attempt_timeout=0.3, total_timeout=1.5, backoff=0.05)


@dataclasses.dataclass
class BlackHole:
    """Accepts TCP connections and never says a word (no HTTP status, no SMTP greeting)."""

    port: int
    connections: int = 0


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    writers: list[asyncio.StreamWriter] = []
    hole = BlackHole(0)

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hole.connections += 1
        writers.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    hole.port = server.sockets[0].getsockname()[1]
    try:
        yield hole
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


# --- Slack ------------------------------------------------------------------------------

SLACK_PATH = "/services/ok/T000/B000/XXXXSECRETXXXX"


def slack_channel() -> policy.Channel:
    return policy.Channel(name="slack-sre", type=policy.ChannelType.SLACK, secret_ref={"name": "slack", "key": "url"})


async def test_slack_receiver_refuses_a_payload_without_text_or_blocks(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    # The peer itself must be strict, or the tests below would prove nothing.
    async with session.post(peer.url(SLACK_PATH), json={"username": "x"}) as r:
        assert (r.status, await r.text()) == (400, "invalid_payload")
    async with session.post(peer.url(SLACK_PATH), json={"text": "x", "blocks": [{"type": "bogus"}]}) as r:
        assert (r.status, await r.text()) == (400, "invalid_blocks")


@pytest.mark.parametrize("kind", list(NoticeKind))
async def test_slack_delivers_every_kind(peer: Peer, session: aiohttp.ClientSession, kind: NoticeKind) -> None:
    sender = notifiers.sender_for(slack_channel(), peer.url(SLACK_PATH) + "\n", session)
    assert isinstance(sender, notifiers.SlackSender)
    delivery = await sender.send(make_notice(kind, actor="ann"))
    assert delivery == notifiers.Delivery("slack-sre", True, 1, "HTTP 200: ok", False)
    [body] = peer.accepted_at(SLACK_PATH)
    assert body == notices.slack_payload(make_notice(kind, actor="ann"))
    assert "<@U012AB3CD>" in body["text"]


async def test_slack_revoked_webhook_is_not_retried_and_the_url_stays_secret(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sleep = Sleeper()
    url = peer.url("/services/revoked/T000/B000/XXXXSECRETXXXX")
    sender = notifiers.sender_for(slack_channel(), url, session, policy=FAST, sleep=sleep)
    delivery = await sender.send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
    assert delivery.detail == "HTTP 404: no_service (the webhook URL is revoked or wrong)"
    assert "SECRET" not in delivery.describe() and sleep.pauses == []


# --- PagerDuty --------------------------------------------------------------------------


def pd_sender(
    peer: Peer, session: aiohttp.ClientSession, mode: str = "", key: str = ROUTING_KEY, **kw: Any
) -> notifiers.Sender:
    channel = policy.Channel(name="pd", type=policy.ChannelType.PAGER_DUTY, secret_ref={"name": "pd", "key": "key"})
    path = f"/{mode}/v2/enqueue" if mode else "/v2/enqueue"
    return notifiers.sender_for(channel, key, session, pagerduty_url=peer.url(path), **kw)


async def test_pagerduty_trigger_acknowledge_resolve_share_one_dedup_key(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sender = pd_sender(peer, session, key=ROUTING_KEY + "\n")  # a Secret made with echo has a newline
    results = [await sender.send(make_notice(k)) for k in (NoticeKind.PAGE, NoticeKind.REMINDER)]
    results += [await sender.send(make_notice(k, actor="ann")) for k in (NoticeKind.ACKNOWLEDGE, NoticeKind.RESOLVE)]
    assert all(d.ok and d.attempts == 1 for d in results), results
    assert results[0].detail == "HTTP 202: success: Event processed: dedup_key oncall.dev/shop/inc-7f3a"
    events = peer.accepted_at("/v2/enqueue")
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"oncall.dev/shop/inc-7f3a"}
    assert {e["routing_key"] for e in events} == {ROUTING_KEY}
    assert events[0]["payload"]["severity"] == "critical" and events[0]["links"][0]["href"]


async def test_pagerduty_invalid_routing_key_is_refused_with_the_reason_and_not_retried(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sleep = Sleeper()
    delivery = await pd_sender(peer, session, key="too-short", policy=FAST, sleep=sleep).send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
    assert delivery.detail == (
        "HTTP 400: invalid event: Event object is invalid: "
        "Length of 'routing_key' is incorrect (should be 32 characters)"
    )
    assert peer.hits == {"/v2/enqueue": 1} and sleep.pauses == []


async def test_pagerduty_500_twice_then_accepted_is_delivered_once(peer: Peer, session: aiohttp.ClientSession) -> None:
    sleep = Sleeper()
    sender = pd_sender(peer, session, "flaky", policy=FAST, sleep=sleep, rand=fixed_jitter)
    delivery = await sender.send(make_notice())
    assert (delivery.ok, delivery.attempts) == (True, 3)
    assert sleep.pauses == [0.5, 1.0]  # exponential backoff
    assert len(peer.accepted_at("/flaky/v2/enqueue")) == 1  # nothing lost, nothing doubled


async def test_pagerduty_always_500_fails_after_the_attempts_with_the_reason(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sleep = Sleeper()
    delivery = await pd_sender(peer, session, "down", policy=FAST, sleep=sleep).send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 3, True)
    assert delivery.detail == "HTTP 500: error: Internal server error"
    assert delivery.describe() == "pd: failed after 3 attempts: HTTP 500: error: Internal server error (transient)"
    assert peer.hits == {"/down/v2/enqueue": 3} and len(sleep.pauses) == 2
    assert 0.25 <= sleep.pauses[0] <= 0.5 and 0.5 <= sleep.pauses[1] <= 1.0  # jitter within 50-100 %


async def test_pagerduty_429_honours_a_short_retry_after(peer: Peer, session: aiohttp.ClientSession) -> None:
    sleep = Sleeper()
    delivery = await pd_sender(peer, session, "ratelimited", policy=FAST, sleep=sleep).send(make_notice())
    assert (delivery.ok, delivery.attempts) == (True, 2) and sleep.pauses == [1.0]


async def test_pagerduty_429_with_a_long_retry_after_gives_up_at_once_as_retryable(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    sleep = Sleeper()
    delivery = await pd_sender(peer, session, "ratelimited-long", policy=FAST, sleep=sleep).send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, True)
    assert "HTTP 429" in delivery.detail and "Retry-After 3600s is longer than the 10s we wait" in delivery.detail
    assert sleep.pauses == []


async def test_pagerduty_receiver_checks_documented_fields(peer: Peer, session: aiohttp.ClientSession) -> None:
    bad = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "x", "source": "y", "severity": "fatal"},
    }
    async with session.post(peer.url("/v2/enqueue"), json=bad) as r:
        assert r.status == 400 and "severity" in (await r.json())["errors"][0]
    async with session.post(peer.url("/v2/enqueue"), json={"routing_key": ROUTING_KEY, "event_action": "resolve"}) as r:
        assert r.status == 400 and "dedup_key" in (await r.json())["errors"][0]


# --- the generic webhook ------------------------------------------------------------------


def hook_channel() -> policy.Channel:
    return policy.Channel(name="hook", type=policy.ChannelType.WEBHOOK, secret_ref={"name": "hook", "key": "url"})


async def test_webhook_body_and_headers_and_one_id_across_retries(peer: Peer, session: aiohttp.ClientSession) -> None:
    sleep = Sleeper()
    sender = notifiers.sender_for(hook_channel(), peer.url("/hook/flaky"), session, policy=FAST, sleep=sleep)
    n = make_notice(NoticeKind.RESOLVE, actor="ann")
    delivery = await sender.send(n)
    assert (delivery.ok, delivery.attempts, delivery.detail) == (True, 2, "HTTP 204")
    failed, ok = peer.accepted
    assert ok.body == notices.webhook_body(n) and ok.body["version"] == "1"
    assert ok.headers["X-Oncall-Event"] == "resolve" and ok.headers["User-Agent"].startswith("oncall-operator/")
    assert failed.headers["X-Oncall-Delivery"] == ok.headers["X-Oncall-Delivery"] == ok.body["id"]


@pytest.mark.looptime  # deadlines measured on the loop's own clock: a busy machine cannot stretch them
async def test_endpoint_that_never_answers_times_out_within_the_deadline(
    black_hole: BlackHole, session: aiohttp.ClientSession
) -> None:
    url = f"http://127.0.0.1:{black_hole.port}/hook"
    sender = notifiers.sender_for(hook_channel(), url, session, policy=SHORT)
    started = asyncio.get_running_loop().time()
    delivery = await sender.send(make_notice())
    elapsed = asyncio.get_running_loop().time() - started
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 3, True)
    assert delivery.detail == "timed out after 0.3s without an answer"
    assert black_hole.connections >= 1 and elapsed < SHORT.total_timeout


@pytest.mark.looptime  # deadlines measured on the loop's own clock: a busy machine cannot stretch them
async def test_the_total_deadline_cuts_attempts_short(black_hole: BlackHole, session: aiohttp.ClientSession) -> None:
    deadline = notifiers.RetryPolicy(attempts=10, attempt_timeout=0.4, total_timeout=1.0, backoff=0.0)
    sender = notifiers.sender_for(hook_channel(), f"http://127.0.0.1:{black_hole.port}/", session, policy=deadline)
    started = asyncio.get_running_loop().time()
    delivery = await sender.send(make_notice())
    elapsed = asyncio.get_running_loop().time() - started
    assert not delivery.ok and delivery.retryable and delivery.attempts == 3
    assert delivery.detail.startswith("timed out after 0.2s")  # the third attempt got what was left
    assert "no time left for another attempt within the 1s deadline" in delivery.detail
    assert 0.9 < elapsed < 1.5


async def test_connection_refused_is_retried_then_reported(session: aiohttp.ClientSession) -> None:
    with socket_bound() as port:  # a port nobody listens on
        sleep = Sleeper()
        sender = notifiers.sender_for(
            hook_channel(), f"http://127.0.0.1:{port}/secret-token", session, policy=FAST, sleep=sleep
        )
        delivery = await sender.send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 3, True)
    assert delivery.detail.startswith("connection failed: ClientConnectorError: Cannot connect to host 127.0.0.1")
    assert "secret-token" not in delivery.detail


@contextlib.contextmanager
def socket_bound() -> Iterator[int]:
    """Reserve a loopback port without listening on it: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


# --- fan-out ----------------------------------------------------------------------------


@pytest.mark.looptime  # deadlines measured on the loop's own clock: a busy machine cannot stretch them
async def test_send_all_one_failing_or_hanging_channel_never_blocks_the_others(
    peer: Peer, black_hole: BlackHole, session: aiohttp.ClientSession
) -> None:
    senders = [
        notifiers.sender_for(slack_channel(), peer.url(SLACK_PATH), session, policy=SHORT),
        pd_sender(peer, session, "down", policy=SHORT),
        notifiers.sender_for(hook_channel(), f"http://127.0.0.1:{black_hole.port}/", session, policy=SHORT),
    ]
    started = asyncio.get_running_loop().time()
    deliveries = await notifiers.send_all(make_notice(), senders)
    elapsed = asyncio.get_running_loop().time() - started
    assert [(d.channel, d.ok) for d in deliveries] == [("slack-sre", True), ("pd", False), ("hook", False)]
    assert deliveries[1].detail.startswith("HTTP 500") and deliveries[1].attempts == 3
    assert deliveries[2].detail.startswith("timed out after")
    assert elapsed < SHORT.total_timeout + 0.3
    assert len(peer.accepted_at(SLACK_PATH)) == 1


class Crashing(notifiers.Sender):
    async def attempt(self, notice: Notice, timeout: float) -> notifiers.Outcome:
        raise RuntimeError("boom")


class Broken(notifiers.Sender):
    async def attempt(self, notice: Notice, timeout: float) -> notifiers.Outcome:
        raise AssertionError("unreachable")

    async def send(self, notice: Notice) -> notifiers.Delivery:
        raise RuntimeError("send itself blew up")


async def test_send_all_never_raises(peer: Peer, session: aiohttp.ClientSession) -> None:
    deliveries = await notifiers.send_all(
        make_notice(),
        [
            Crashing("crashing"),
            Broken("broken"),
            notifiers.sender_for(slack_channel(), peer.url(SLACK_PATH), session),
        ],
    )
    assert deliveries == [
        notifiers.Delivery("crashing", False, 1, "unexpected error: RuntimeError: boom", False),
        notifiers.Delivery("broken", False, 0, "sender crashed: RuntimeError('send itself blew up')", True),
        notifiers.Delivery("slack-sre", True, 1, "HTTP 200: ok", False),
    ]


# --- the factory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "secret", "expected"),
    [
        (slack_channel(), None, "no value in Secret 'slack' key 'url': a Slack channel needs one"),
        (slack_channel(), "  \n", "no value in Secret 'slack' key 'url': a Slack channel needs one"),
        (slack_channel(), "xoxb-not-a-url-SECRET", "the value in Secret 'slack' key 'url' is not an http(s) URL"),
        (hook_channel(), "ftp://example.com/x", "the value in Secret 'hook' key 'url' is not an http(s) URL"),
        (
            policy.Channel(
                name="mail",
                type=policy.ChannelType.EMAIL,
                email={"smtpHost": "mail.example.com", "from": "a@b.c", "startTls": False},
                secret_ref={"name": "smtp", "key": "auth"},
            ),
            "user:pw",
            "refusing to send SMTP credentials without STARTTLS (set email.startTls: true) (Secret 'smtp' key 'auth')",
        ),
        (
            policy.Channel(
                name="mail",
                type=policy.ChannelType.EMAIL,
                email={"smtpHost": "mail.example.com", "from": "a@b.c"},
                secret_ref={"name": "smtp", "key": "auth"},
            ),
            "no-colon",
            "the SMTP Secret value must be 'username:password' (Secret 'smtp' key 'auth')",
        ),
    ],
)
async def test_sender_for_a_misconfigured_channel_fails_clearly_without_echoing_the_secret(
    session: aiohttp.ClientSession, channel: policy.Channel, secret: str | None, expected: str
) -> None:
    sender = notifiers.sender_for(channel, secret, session)
    assert isinstance(sender, notifiers.Unusable)
    delivery = await sender.send(make_notice())
    assert delivery == notifiers.Delivery(channel.name, False, 0, expected, False)
    assert delivery.describe() == f"{channel.name}: not sent: {expected}"


# --- email over a real SMTP server --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cert:
    cert: pathlib.Path
    key: pathlib.Path


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1 and localhost, acting as its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oncall-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("smtp-tls")
    paths = Cert(d / "cert.pem", d / "key.pem")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Mailbox:
    """The aiosmtpd handler: keeps what was delivered; can answer 451 to the first DATA."""

    def __init__(self, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.envelopes: list[Envelope] = []
        self.sessions: list[Session] = []
        self.mechanisms: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_first:
            self.fail_first = False
            return "451 4.3.0 Temporary local problem, try again"
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 2.0.0 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

    def message(self, i: int = 0) -> email.message.EmailMessage:
        content = self.envelopes[i].original_content or self.envelopes[i].content
        assert isinstance(content, bytes)
        msg = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@dataclasses.dataclass
class SmtpPeer:
    mailbox: Mailbox
    port: int


def start_smtp(cert: Cert, mailbox: Mailbox, *, tls: bool = True) -> Iterator[SmtpPeer]:
    kwargs: dict[str, Any] = {}
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        kwargs.update(tls_context=context, require_starttls=True, auth_required=True)
    controller = LoopbackController(mailbox, hostname="127.0.0.1", port=0, authenticator=mailbox.authenticate, **kwargs)
    controller.start()
    try:
        yield SmtpPeer(mailbox, controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(cert: Cert) -> Iterator[SmtpPeer]:
    yield from start_smtp(cert, Mailbox())


def email_channel(port: int, *, start_tls: bool = True, to: list[str] | None = None) -> policy.Channel:
    return policy.Channel(
        name="mail",
        type=policy.ChannelType.EMAIL,
        email={
            "smtpHost": "127.0.0.1",
            "smtpPort": port,
            "startTls": start_tls,
            "from": "oncall@example.com",
            "to": ["sre@example.com", "ANN@example.com"] if to is None else to,
        },
        secret_ref={"name": "smtp", "key": "auth"},
    )


def trusting(cert: Cert) -> ssl.SSLContext:
    return smtp_notifier.ssl_context(cafile=str(cert.cert))


async def test_email_over_starttls_with_auth(smtp_server: SmtpPeer, cert: Cert, session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(
        email_channel(smtp_server.port), f"{SMTP_USER}:{SMTP_PASSWORD}\n", session, smtp_tls=trusting(cert)
    )
    delivery = await sender.send(make_notice())
    assert delivery == notifiers.Delivery(
        "mail", True, 1, f"accepted by 127.0.0.1:{smtp_server.port} for 3 recipients", False
    )
    [envelope] = smtp_server.mailbox.envelopes
    assert envelope.mail_from == "oncall@example.com"
    assert envelope.rcpt_tos == ["sre@example.com", "ANN@example.com", "bob@example.com"]  # ann once
    [s] = smtp_server.mailbox.sessions
    assert s.ssl is not None and s.authenticated  # STARTTLS happened, then AUTH
    assert smtp_server.mailbox.mechanisms[0] in ("PLAIN", "LOGIN")
    msg = smtp_server.mailbox.message()
    assert msg["Subject"] == "[CRITICAL] Checkout API OOMKilled (shop/inc-7f3a)"
    assert msg["From"] == "oncall@example.com"
    assert msg["To"] == "sre@example.com, ANN@example.com, bob@example.com"
    assert msg["Message-ID"] == f"<{notices.delivery_id(make_notice())}@oncall.dev>"
    assert msg["Bcc"] is None
    body = msg.get_content()
    assert "container api was OOMKilled 3 times in 10m" in body
    assert "Paged:     Ann <ann@example.com>, Bob <bob@example.com>" in body
    assert "- Runbook: https://wiki.example.com/rb" in body


async def test_email_keeps_non_ascii_text_intact(
    smtp_server: SmtpPeer, cert: Cert, session: aiohttp.ClientSession
) -> None:
    sender = notifiers.sender_for(
        email_channel(smtp_server.port), f"{SMTP_USER}:{SMTP_PASSWORD}", session, smtp_tls=trusting(cert)
    )
    n = make_notice(title="Zahlung fehlgeschlagen \u2013 \u00dcberlauf \u2713", summary="Gr\u00fc\u00dfe aus K\u00f6ln")
    assert (await sender.send(n)).ok
    raw = smtp_server.mailbox.envelopes[0].original_content
    assert isinstance(raw, bytes) and raw.isascii()  # no 8-bit data on the wire
    msg = smtp_server.mailbox.message()
    assert msg["Subject"] == "[CRITICAL] Zahlung fehlgeschlagen \u2013 \u00dcberlauf \u2713 (shop/inc-7f3a)"
    assert "Gr\u00fc\u00dfe aus K\u00f6ln" in msg.get_content()


async def test_email_wrong_password_is_refused_and_not_retried(
    smtp_server: SmtpPeer, cert: Cert, session: aiohttp.ClientSession
) -> None:
    sleep = Sleeper()
    sender = notifiers.sender_for(
        email_channel(smtp_server.port), f"{SMTP_USER}:wrong", session, smtp_tls=trusting(cert), sleep=sleep
    )
    delivery = await sender.send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
    assert delivery.detail.startswith(f"127.0.0.1:{smtp_server.port} refused the login: 535")
    assert "wrong" not in delivery.detail and smtp_server.mailbox.envelopes == [] and sleep.pauses == []


async def test_email_untrusted_certificate_is_refused(smtp_server: SmtpPeer, session: aiohttp.ClientSession) -> None:
    # the default: the system trust store, which does not know the test's self-signed CA
    sender = notifiers.sender_for(email_channel(smtp_server.port), f"{SMTP_USER}:{SMTP_PASSWORD}", session)
    delivery = await sender.send(make_notice())
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
    assert "TLS certificate not trusted" in delivery.detail and smtp_server.mailbox.envelopes == []


async def test_email_temporary_failure_is_retried(cert: Cert, session: aiohttp.ClientSession) -> None:
    for peer in start_smtp(cert, Mailbox(fail_first=True)):
        sleep = Sleeper()
        sender = notifiers.sender_for(
            email_channel(peer.port), f"{SMTP_USER}:{SMTP_PASSWORD}", session, smtp_tls=trusting(cert), sleep=sleep
        )
        delivery = await sender.send(make_notice(NoticeKind.ACKNOWLEDGE, actor="ann"))
        assert (delivery.ok, delivery.attempts) == (True, 2) and len(sleep.pauses) == 1
        assert len(peer.mailbox.envelopes) == 1
        assert (
            peer.mailbox.message()["Subject"]
            == "[CRITICAL] Acknowledged by ann: Checkout API OOMKilled (shop/inc-7f3a)"
        )


async def test_email_server_without_starttls_is_refused(cert: Cert, session: aiohttp.ClientSession) -> None:
    for peer in start_smtp(cert, Mailbox(), tls=False):
        sender = notifiers.sender_for(email_channel(peer.port), f"{SMTP_USER}:{SMTP_PASSWORD}", session)
        delivery = await sender.send(make_notice())
        assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
        assert delivery.detail == f"127.0.0.1:{peer.port} does not offer STARTTLS"


async def test_email_without_any_recipient_fails_without_connecting(session: aiohttp.ClientSession) -> None:
    sender = notifiers.sender_for(email_channel(9, to=[]), None, session)
    delivery = await sender.send(make_notice(recipients=[Member(name="Nomail")]))
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 1, False)
    assert delivery.detail.startswith("no recipients")


@pytest.mark.looptime  # deadlines measured on the loop's own clock: a busy machine cannot stretch them
async def test_smtp_server_that_never_greets_times_out_within_the_deadline(
    black_hole: BlackHole, session: aiohttp.ClientSession
) -> None:
    sender = notifiers.sender_for(email_channel(black_hole.port), f"{SMTP_USER}:{SMTP_PASSWORD}", session, policy=SHORT)
    started = asyncio.get_running_loop().time()
    delivery = await sender.send(make_notice())
    elapsed = asyncio.get_running_loop().time() - started
    assert (delivery.ok, delivery.attempts, delivery.retryable) == (False, 3, True)
    assert delivery.detail.startswith("timed out after 0.3s")
    assert black_hole.connections == 3 and elapsed < SHORT.total_timeout


def test_rendered_payload_is_json_serialisable() -> None:
    for kind in NoticeKind:
        json.dumps(notices.webhook_body(make_notice(kind)))
        json.dumps(notices.pagerduty_event(make_notice(kind), ROUTING_KEY))
        json.dumps(notices.slack_payload(make_notice(kind)))
