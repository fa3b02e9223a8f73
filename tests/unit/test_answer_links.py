"""Signed answer links: a table of tokens a hostile reader would try, and what each one gets."""

import datetime as dt
import urllib.parse

import pytest

from oncall_operator.domain import answer_links as al

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
INC = al.Incident("shop", "checkout-down", "1a2b3c4d-0000-4000-8000-000000000001")
LATER = NOW + dt.timedelta(hours=1)


def token(action: al.Action = al.Action.ACKNOWLEDGE, person: str = "Ada", inc: al.Incident = INC) -> str:
    return al.sign(KEY, inc, person, action, LATER)


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def parts(tok: str) -> list[str]:
    return tok.split(".")


def swap(tok: str, index: int, value: str) -> str:
    p = parts(tok)
    p[index] = value
    return ".".join(p)


@pytest.mark.parametrize("action", list(al.Action))
def test_a_token_verifies_on_its_incident_and_says_who_and_what(action: al.Action) -> None:
    claim = al.verify(KEY, token(action, "Ada Lovelace / SRE"), INC, NOW)
    assert claim == al.Claim("Ada Lovelace / SRE", action, LATER)


OTHER_PERSON = al.sign(KEY, INC, "Bob", al.Action.ACKNOWLEDGE, LATER)


@pytest.mark.parametrize(
    ("tok", "inc", "now", "refusal"),
    [
        # another incident's link, or a person's link replayed on another incident
        (token(), al.Incident("shop", "payments-down", INC.uid), NOW, al.Refusal.FORGED),
        (token(), al.Incident("other-team", "checkout-down", INC.uid), NOW, al.Refusal.FORGED),
        (
            token(),
            al.Incident("shop", "checkout-down", "ffffffff-0000-4000-8000-000000000009"),
            NOW,
            al.Refusal.FOREIGN,
        ),
        # the same name deleted and made again: a new uid, the old links are dead
        (token(), al.Incident("shop", "checkout-down", "1a2b3c4d-0000-4000-8000-000000000002"), NOW, al.Refusal.FORGED),
        (token(), INC, LATER, al.Refusal.EXPIRED),
        (token(), INC, LATER + dt.timedelta(days=3), al.Refusal.EXPIRED),
        (al.sign(b"another key 0123456789", INC, "Ada", al.Action.ACKNOWLEDGE, LATER), INC, NOW, al.Refusal.FORGED),
        # tampering: the action, the expiry, the person, the MAC
        (swap(token(), 0, "r"), INC, NOW, al.Refusal.FORGED),
        (swap(token(), 0, "x"), INC, NOW, al.Refusal.MALFORMED),
        (swap(token(), 1, str(int(LATER.timestamp()) + 86400)), INC, NOW, al.Refusal.FORGED),
        (swap(token(), 3, parts(OTHER_PERSON)[3]), INC, NOW, al.Refusal.FORGED),  # Ada's MAC, Bob's name
        (swap(token(), 4, parts(OTHER_PERSON)[4]), INC, NOW, al.Refusal.FORGED),
        (swap(token(), 4, flip(parts(token())[4], 3)), INC, NOW, al.Refusal.FORGED),
        (swap(token(), 4, parts(token())[4][:-2]), INC, NOW, al.Refusal.MALFORMED),  # a short MAC
        (swap(token(), 4, ""), INC, NOW, al.Refusal.MALFORMED),
        (swap(token(), 3, ""), INC, NOW, al.Refusal.MALFORMED),
        (swap(token(), 3, "_w"), INC, NOW, al.Refusal.MALFORMED),  # not UTF-8
        (swap(token(), 1, "-5"), INC, NOW, al.Refusal.MALFORMED),
        (swap(token(), 1, "9" * 40), INC, NOW, al.Refusal.MALFORMED),
        # garbage and oversized
        ("", INC, NOW, al.Refusal.MALFORMED),
        ("garbage", INC, NOW, al.Refusal.MALFORMED),
        ("a.b.c.d.e.f", INC, NOW, al.Refusal.MALFORMED),
        (token() + "." + "x", INC, NOW, al.Refusal.MALFORMED),
        ("a." + "1" * 10 + ".1a2b3c4d." + "Q" * 2000 + ".AAAA", INC, NOW, al.Refusal.MALFORMED),
        (token().replace(".", "%2E"), INC, NOW, al.Refusal.MALFORMED),
        ("<script>.1.2.3.4", INC, NOW, al.Refusal.MALFORMED),
    ],
)
def test_a_token_refuses(tok: str, inc: al.Incident, now: dt.datetime, refusal: al.Refusal) -> None:
    assert al.verify(KEY, tok, inc, now) == refusal
    assert refusal.sentence


def test_links_name_the_incident_and_the_person_and_fit_an_sms() -> None:
    found = al.links("https://oncall.example.com/", KEY, INC, "Ada", NOW)
    assert [text for text, _ in found] == ["Acknowledge", "Resolve", "View"]
    for (_, url), action in zip(found, (al.Action.ACKNOWLEDGE, al.Action.RESOLVE, al.Action.VIEW), strict=True):
        assert url.startswith("https://oncall.example.com/answer/shop/checkout-down/")
        claim = al.verify(KEY, url.rsplit("/", 1)[1], INC, NOW)
        assert claim == al.Claim("Ada", action, NOW + al.TTL)
        assert len(url) < 150  # an SMS has room for it
    [(text, url)] = al.links("https://x", KEY, INC, "Bob", NOW, label="Bob")
    assert text == "Acknowledge as Bob" and isinstance(al.verify(KEY, url.rsplit("/", 1)[1], INC, NOW), al.Claim)


def test_hostile_names_stay_in_their_path_segment() -> None:
    inc = al.Incident("ns", "a/../../b?x=1#y", "u" * 36)
    [(_, url)] = al.links("https://h", KEY, inc, "Eve", NOW, label="Eve")
    parsed = urllib.parse.urlsplit(url)
    assert parsed.query == "" and parsed.fragment == "" and parsed.path.count("/") == 4
