"""What a phone says: an SMS of at most two segments, and TwiML a voice call reads aloud.

A page by SMS must arrive whole and cheap: GSM-7 text (anything else would switch the whole
message to UCS-2, 70 characters a segment) in at most two concatenated segments (2 x 153
characters). A call reads the incident twice with ``<Say>`` and hangs up (with an answer link, the
first reading is a ``<Gather>``: "press 1 to acknowledge", see :mod:`.twilio_answers`); TwiML given inline
to Twilio's Calls API may be 4000 characters at most, and every value is XML-escaped.
"""

import unicodedata
import xml.sax.saxutils

from oncall_operator.domain import notices, twilio_answers

SMS_MAX = 306
"""Two concatenated GSM-7 segments (153 characters each)."""
TWIML_MAX = 4000
ACK_URL_MAX = 160
"""The person's signed acknowledge link (``domain/answer_links.py``) replaces the kubectl line when it is this short."""
_GSM_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?()'\"/-+@#%&*=_<>\n")
_PLAIN = str.maketrans(
    {
        "[": "(",
        "]": ")",
        "{": "(",
        "}": ")",
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "|": "/",
        "~": "-",
    }
)
_SPOKEN_KIND = {
    notices.NoticeKind.PAGE: "You are paged for an incident",
    notices.NoticeKind.REMINDER: "Reminder: an incident still needs you",
    notices.NoticeKind.ACKNOWLEDGE: "An incident was acknowledged",
    notices.NoticeKind.RESOLVE: "An incident was resolved",
    notices.NoticeKind.NOTIFY: "An incident notice",
}


def gsm_text(text: str) -> str:
    """``text`` in the GSM-7 basic set: accents dropped, other characters as ``?``, whitespace collapsed."""
    plain = unicodedata.normalize("NFKD", text.translate(_PLAIN)).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c in _GSM_SAFE else "?" for c in plain).split())


def sms_text(notice: notices.Notice) -> str:
    """One short line: severity, title, incident, level, what to do; at most :data:`SMS_MAX` GSM-7 characters."""
    level = f" L{notice.level}" if notice.level else ""
    head = gsm_text(f"{notices.headline(notice)}{level}.")
    tail = ""
    ack = next((url for text, url in notice.links if text == "Acknowledge" and len(url) <= ACK_URL_MAX), "")
    if notice.kind in (notices.NoticeKind.PAGE, notices.NoticeKind.REMINDER):
        tail = " " + gsm_text(
            f"Ack: {ack} or reply ACK" if ack else f"Ack: kubectl oncall ack {notice.name} -n {notice.namespace}"
        )
    room = SMS_MAX - len(tail)
    return (head if len(head) <= room else head[: room - 3] + "...") + tail


def twiml(notice: notices.Notice) -> str:
    """A ``<Response>`` that says the incident twice, then hangs up; at most :data:`TWIML_MAX` characters."""
    what = _SPOKEN_KIND[notice.kind]
    parts = [f"{what}. Severity {notice.severity.value}. {notices.truncate(notice.title, 300)}."]
    if notice.target:
        parts.append(f"Affected: {notices.truncate(notice.target, 200)}.")
    if notice.level:
        parts.append(f"Escalation level {notice.level}.")
    if notice.kind in (notices.NoticeKind.PAGE, notices.NoticeKind.REMINDER):
        parts.append(f"Please acknowledge incident {notices.truncate(notice.name, 120)} now.")
    spoken = xml.sax.saxutils.escape(" ".join(" ".join(p.split()) for p in parts))
    body = f'<Say>{spoken}</Say><Pause length="1"/><Say>{spoken}</Say><Hangup/>'
    ack = next((u for t, u in notice.links if t == "Acknowledge"), "")
    action = twilio_answers.gather_action(ack) if ack and len(ack) <= ACK_URL_MAX * 2 else None
    if action and notice.kind in (notices.NoticeKind.PAGE, notices.NoticeKind.REMINDER):
        press = "Press 1 to acknowledge."
        target = xml.sax.saxutils.escape(action, {'"': "&quot;"})
        body = (
            f'<Gather numDigits="1" timeout="10" method="POST" action="{target}">'
            f"<Say>{spoken}</Say><Say>{press}</Say></Gather><Say>{spoken}</Say><Hangup/>"
        )
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
