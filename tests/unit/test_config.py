"""The operator's settings from its environment: a new-Incident rate refusing everything is an error."""

import pytest

from oncall_operator.executor import config


@pytest.mark.parametrize(
    ("burst", "per_minute", "ok"),
    [("500", "120", True), ("1", "0.5", True), ("0", "120", False), ("500", "0", False), ("500", "-1", False)],
)
def test_the_new_incident_rate_must_let_incidents_open(
    monkeypatch: pytest.MonkeyPatch, burst: str, per_minute: str, ok: bool
) -> None:
    monkeypatch.setenv("ONCALL_NEW_INCIDENTS_BURST", burst)
    monkeypatch.setenv("ONCALL_NEW_INCIDENTS_PER_MINUTE", per_minute)
    if ok:
        assert config.Config.from_env().new_incidents_burst == float(burst)
    else:
        with pytest.raises(ValueError, match="ONCALL_NEW_INCIDENTS_BURST"):
            config.Config.from_env()
