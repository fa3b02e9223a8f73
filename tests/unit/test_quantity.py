"""Kubernetes quantities parse exactly, whatever notation the API server or a person used."""

from fractions import Fraction

import pytest

from oncall_operator.domain import quantity

MI = 2**20


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("128Mi", 128 * MI),
        ("1Gi", 1024 * MI),
        ("0.5Gi", 512 * MI),
        ("1.5Gi", 1536 * MI),
        ("134217728", 128 * MI),
        ("129M", 129 * 10**6),
        ("129e6", 129 * 10**6),
        ("1E3", 1000),
        ("134217728000m", 128 * MI),
        ("1k", 1000),
        ("2Ki", 2048),
        ("1Ti", 2**40),
        (".5Ki", 512),
        ("500m", Fraction(1, 2)),
        ("+1Mi", MI),
        ("0", 0),
    ],
)
def test_parse_is_exact(text: str, value: int | Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "12MiB", "1.2.3", "ten", "1 Gi", "5x"])
def test_parse_refuses_what_the_api_server_refuses(text: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)


@pytest.mark.parametrize(
    ("amount", "mib"),
    [(100 * MI, 100), (100 * MI + 1, 101), (Fraction(120 * MI), 120), (Fraction(100 * MI) * Fraction("1.2") + 1, 121)],
)
def test_ceil_mi_rounds_up_to_whole_mebibytes(amount: int | Fraction, mib: int) -> None:
    assert quantity.ceil_mi(Fraction(amount)) == mib


def test_equal_amounts_in_other_notations_compare_equal() -> None:
    # the API server stores 1024Mi as 1Gi: the operator must never compare strings
    assert quantity.parse("1024Mi") == quantity.parse("1Gi") == quantity.parse("1073741824")


def test_show_and_mi() -> None:
    assert quantity.mi(356) == "356Mi"
    assert quantity.show(Fraction(300 * MI)) == "300Mi"
    assert quantity.show(Fraction(10**9)) == "953.7Mi"
