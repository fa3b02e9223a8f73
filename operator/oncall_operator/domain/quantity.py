"""Kubernetes quantities, exactly, and the operator's whole-Mi rounding.

The API server accepts ``134217728``, ``128Mi``, ``0.125Gi``, ``129e6``, ``134217728000m``
for the same amount and stores a canonical form (``1024Mi`` comes back as ``1Gi``), so the
operator never compares quantity strings: both sides are parsed to an exact ``Fraction`` of
the base unit (bytes for memory, cores for CPU). Floats are never used, so ``100Mi x 1.2`` is
exactly ``120Mi``. New limits are written in whole Mi, rounded up, as VPA and people do.
"""

import math
import re
from fractions import Fraction

MI = 2**20
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


def parse(text: str) -> Fraction:
    """The exact amount a quantity string stands for, in the base unit (bytes, cores)."""
    found = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 512Mi, 2Gi, 1.5G)")
    value = Fraction(found["number"])
    if found["exp"]:
        value *= Fraction(10) ** int(found["exp"][1:])
    else:
        value *= _SUFFIXES[found["suffix"] or ""]
    return -value if found["sign"] == "-" else value


def ceil_mi(amount: Fraction) -> int:
    """``amount`` bytes rounded up to whole mebibytes."""
    return math.ceil(amount / MI)


def mi(count: int) -> str:
    """Whole mebibytes as a quantity string: ``mi(356) == "356Mi"``."""
    return f"{count}Mi"


def show(amount: Fraction) -> str:
    """A readable rendering for messages: whole Mi when exact, else bytes."""
    if amount % MI == 0:
        return mi(int(amount / MI))
    return f"{float(amount / MI):.1f}Mi"
