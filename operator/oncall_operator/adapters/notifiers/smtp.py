"""Email over SMTP: STARTTLS, then AUTH with ``username:password`` from the channel's Secret.

(Named ``smtp`` so it does not shadow the standard library's ``email`` package.)

``smtplib`` blocks, so each attempt runs in a worker thread; every socket operation is bounded
by the attempt's timeout, and when the attempt's time is up the socket is shut down from the
event loop so the thread ends too. Credentials are never sent over a plain connection: a
channel with credentials but ``startTls: false`` is refused before it connects. The server's
certificate is checked against the system trust store unless an SSL context (e.g. with a
private CA file) is given.

Recipients are the channel's fixed ``to`` addresses plus the email of every person in the
Notice. SMTP 4xx replies, dropped connections and timeouts are retried; 5xx replies, a
refused login and an untrusted certificate are not.
"""

import asyncio
import contextlib
import email.message
import random
import smtplib
import socket
import ssl
from typing import Any

from oncall_operator.adapters.notifiers import base
from oncall_operator.api import policy as api_policy
from oncall_operator.domain import notices


class ConfigError(ValueError):
    """The channel cannot work as configured; the message says what to fix."""


def parse_credentials(secret_value: str | None) -> tuple[str, str] | None:
    """``username:password`` (a trailing newline from ``kubectl create secret --from-file`` is dropped)."""
    if secret_value is None:
        return None
    text = secret_value.rstrip("\r\n")
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise ConfigError("the SMTP Secret value must be 'username:password'")
    return user, password


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the server: the system trust store, or only ``cafile`` when given."""
    return ssl.create_default_context(cafile=cafile)


class SmtpSender(base.Sender):
    def __init__(
        self,
        channel: str,
        settings: api_policy.EmailSettings,
        credentials: str | None,
        *,
        tls: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        policy: base.RetryPolicy = base.DEFAULT_POLICY,
        sleep: base.Sleep = asyncio.sleep,
        rand: base.Random = random.random,
    ) -> None:
        super().__init__(channel, policy=policy, sleep=sleep, rand=rand)
        self.settings = settings
        self._login = parse_credentials(credentials)
        if self._login and not settings.start_tls:
            raise ConfigError("refusing to send SMTP credentials without STARTTLS (set email.startTls: true)")
        self._tls = tls if tls is not None else ssl_context()
        self._local_hostname = local_hostname

    def recipients(self, notice: notices.Notice) -> list[str]:
        """The fixed addresses, then each paged person's, without duplicates (case-insensitive)."""
        seen: set[str] = set()
        out: list[str] = []
        for address in [*self.settings.to, *(m.email for m in notice.recipients if m.email)]:
            if address.lower() not in seen:
                seen.add(address.lower())
                out.append(address)
        return out

    async def attempt(self, notice: notices.Notice, timeout: float) -> base.Outcome:
        to = self.recipients(notice)
        if not to:
            return base.Outcome(False, "no recipients: the channel has no 'to' and nobody paged has an email")
        try:
            message = notices.email_message(notice, self.settings.sender, to)
        except ValueError as error:
            return base.Outcome(False, f"cannot build the email: {error}")
        opened: list[smtplib.SMTP] = []
        try:
            return await asyncio.to_thread(self._deliver, message, to, timeout, opened)
        except asyncio.CancelledError:
            for client in opened:  # wake the worker thread out of a blocked read
                _shutdown(client)
            raise

    def _deliver(
        self, message: email.message.EmailMessage, to: list[str], timeout: float, opened: list[smtplib.SMTP]
    ) -> base.Outcome:
        host, port = self.settings.smtp_host, self.settings.smtp_port
        where = f"{host}:{port}"
        # Connect separately from the constructor, so the loop can shut the socket down while a read blocks.
        client = _Client(local_hostname=self._local_hostname, timeout=timeout)
        opened.append(client)
        try:
            client.connect(host, port)
            client.ehlo()
            if self.settings.start_tls:
                if not client.has_extn("starttls"):
                    return base.Outcome(False, f"{where} does not offer STARTTLS")
                client.starttls(context=self._tls)
                client.ehlo()
            if self._login:
                client.login(*self._login)
            refused = client.send_message(message, from_addr=self.settings.sender, to_addrs=to)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()  # the message was accepted; a rude goodbye changes nothing
        except smtplib.SMTPAuthenticationError as error:
            return base.Outcome(False, f"{where} refused the login: {_reply(error)}", retryable=_temporary(error))
        except smtplib.SMTPNotSupportedError as error:
            return base.Outcome(False, f"{where}: {error}")
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            listed = "; ".join(f"{a}: {c} {_text(m)}" for a, (c, m) in error.recipients.items())
            return base.Outcome(
                False, f"{where} refused every recipient: {listed}", retryable=all(400 <= c < 500 for c in codes)
            )
        except smtplib.SMTPResponseException as error:
            return base.Outcome(False, f"{where} answered {_reply(error)}", retryable=_temporary(error))
        except smtplib.SMTPServerDisconnected as error:
            return base.Outcome(False, f"{where} closed the connection: {error}", retryable=True)
        except smtplib.SMTPException as error:  # before OSError: SMTPException is one
            return base.Outcome(False, f"{where}: {type(error).__name__}: {error}")
        except ssl.SSLCertVerificationError as error:
            return base.Outcome(False, f"{where}: TLS certificate not trusted: {error.verify_message}")
        except ssl.SSLError as error:
            return base.Outcome(False, f"{where}: TLS failed: {error}")
        except TimeoutError:
            return base.Outcome(False, f"timed out after {round(timeout, 1):g}s talking to {where}", retryable=True)
        except OSError as error:
            return base.Outcome(False, f"cannot reach {where}: {error}", retryable=True)
        finally:
            client.close()
        accepted = len(to) - len(refused)
        detail = f"accepted by {where} for {accepted} recipient{'s' if accepted != 1 else ''}"
        if refused:
            detail += "; refused: " + "; ".join(f"{a}: {c} {_text(m)}" for a, (c, m) in refused.items())
        return base.Outcome(True, detail)


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` that checks the certificate against the host given to ``connect()``.

    ``starttls()`` verifies against the host passed to the constructor; connecting later would
    leave it empty (and the hostname check would fail).
    """

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        self._host = host
        return super().connect(host, port, source_address)


def _shutdown(client: smtplib.SMTP) -> None:
    sock = getattr(client, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _temporary(error: smtplib.SMTPResponseException) -> bool:
    return 400 <= error.smtp_code < 500


def _reply(error: smtplib.SMTPResponseException) -> str:
    return f"{error.smtp_code} {_text(error.smtp_error)}"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
