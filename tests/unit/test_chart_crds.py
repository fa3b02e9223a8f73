"""The Helm chart's crds/ is written and checked by the same generator as crds/."""

import pathlib

import yaml

from oncall_operator.api import crdgen

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART_CRDS = REPO / "deploy" / "helm" / "oncall-operator" / "crds"


def test_default_check_covers_crds_and_the_chart() -> None:
    assert crdgen.main(["--check"]) == 0


def test_chart_crds_are_the_crds_plus_kopfs_peering() -> None:
    ours = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in CHART_CRDS.glob("*.yaml")}
    assert {n: chart[n] for n in ours} == ours
    extra = {n: yaml.safe_load(t) for n, t in chart.items() if n not in ours}
    assert {(c["spec"]["names"]["kind"], c["spec"]["scope"], c["spec"]["group"]) for c in extra.values()} == {
        ("ClusterKopfPeering", "Cluster", "kopf.dev"),
        ("KopfPeering", "Namespaced", "kopf.dev"),
    }


def test_a_stale_chart_file_fails_the_check(tmp_path: pathlib.Path) -> None:
    out, chart = tmp_path / "crds", tmp_path / "chart"
    assert crdgen.main(["--out", str(out), "--chart-out", str(chart)]) == 0
    assert crdgen.main(["--check", "--out", str(out), "--chart-out", str(chart)]) == 0
    (chart / "kopf.dev_kopfpeerings.yaml").write_text("{}")
    assert crdgen.main(["--check", "--out", str(out), "--chart-out", str(chart)]) == 1
    assert crdgen.main(["--check", "--out", str(out)]) == 0  # --out alone leaves the chart alone
    (chart / "kopf.dev_kopfpeerings.yaml").unlink()
    assert crdgen.main(["--check", "--out", str(out), "--chart-out", str(chart)]) == 1
