"""crds/ is generated from the models: it must be current, structural and carry the conventions."""

import pathlib
from typing import Any

import pytest
import yaml

from oncall_operator.api import crdgen, kinds

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


def walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from walk(value, f"{path}[{n}]")


def test_committed_crds_match_the_models() -> None:
    assert crdgen.main(["--check", "--out", str(CRDS)]) == 0


def test_check_fails_on_a_stale_file(tmp_path: pathlib.Path) -> None:
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    target = tmp_path / "oncall.dev_incidents.yaml"
    target.write_text(target.read_text().replace("maxLength: 1024", "maxLength: 1025", 1))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1


def test_check_fails_on_a_missing_or_extra_file(tmp_path: pathlib.Path) -> None:
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "oncall.dev_runbooks.yaml").unlink()
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "old.yaml").write_text("{}")
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_schema_is_structural(kind: kinds.Kind) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        if "properties" in node:
            assert node.get("type") == "object", path
            assert "additionalProperties" not in node, path
        if path.endswith(".properties") or path.endswith("x-kubernetes-validations") or "[" in path.rsplit(".", 1)[-1]:
            continue
        if any(k in node for k in ("pattern", "maxLength", "enum", "format")):
            assert node.get("type") == "string", path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_names_status_and_columns(kind: kinds.Kind) -> None:
    crd = yaml.safe_load((CRDS / f"oncall.dev_{kind.plural}.yaml").read_text())
    assert crd["spec"]["group"] == "oncall.dev" and crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["categories"] == ["oncall"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions"} <= status.keys()
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_short_names_and_incident_columns() -> None:
    assert {k.kind: k.short_names for k in kinds.ALL} == {
        "OnCallSchedule": ("ocs",),
        "EscalationPolicy": ("escpol",),
        "Runbook": ("rb",),
        "Incident": ("inc",),
        "MaintenanceWindow": ("mw",),
        "Heartbeat": ("hb",),
    }
    shown = [c.name.upper() for c in kinds.INCIDENT.columns if not c.priority]
    assert shown == ["SEVERITY", "PHASE", "NEEDS-HUMAN", "ACK-BY", "LEVEL", "ON-CALL", "TARGET", "READY", "AGE"]
    assert [c.name.upper() for c in kinds.INCIDENT.columns if c.priority] == ["RUNBOOK", "TITLE"]
    assert [c.name.upper() for c in kinds.SCHEDULE.columns][:4] == ["TIMEZONE", "ON-CALL", "NEXT-HANDOFF", "NEXT"]
    assert all(kinds.READY in k.columns for k in kinds.ALL)  # `kubectl get oncall` has READY for all four kinds
