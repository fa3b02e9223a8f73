"""The intake's memory of where each group's Incident is: bounded, latest kept, a stale entry forgotten."""

from oncall_operator.executor import alerts


def test_the_oldest_entry_goes_first_and_a_stale_one_is_forgotten_only_where_it_was() -> None:
    known = alerts.Known(size=2)
    known.put("a", "ns-1")
    known.put("b", "ns-1")
    assert known.get("a") == "ns-1"
    known.put("a", "ns-2")  # moved: now the latest
    known.put("c", "ns-1")  # evicts b, the least recently put
    assert (known.get("a"), known.get("b"), known.get("c")) == ("ns-2", None, "ns-1")
    known.forget("a", "ns-1")  # a 404 where it no longer is does not forget where it is now
    assert known.get("a") == "ns-2"
    known.forget("a", "ns-2")
    assert known.get("a") is None
