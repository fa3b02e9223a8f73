"""Generate ``crds/*.yaml`` from the pydantic models, or check that the committed files match.

The Helm chart ships the same CRDs in its own ``crds/`` directory (Helm installs those before
the templates), plus Kopf's two peering CRDs the chart's replicas elect their active one
through; both directories are written and checked together, so one stale check covers both.

The models are the only schema. Pydantic's JSON Schema is close to what the API server wants
but not equal: a CRD schema must be structural (no ``$ref``, no ``anyOf`` for optionals, no
``additionalProperties`` next to ``properties``) and OpenAPI v3.0 (boolean
``exclusiveMinimum``). This module does that translation and nothing else.

usage: python -m oncall_operator.api.crdgen [--check] [--out DIR] [--chart-out DIR]
"""

import argparse
import difflib
import pathlib
import sys
from typing import Any

import yaml

from oncall_operator.api import GROUP, VERSION, kinds

_DROP = {"title", "additionalProperties", "discriminator"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic JSON Schema node into a structural OpenAPI v3.0 node."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"only Optional[X] unions can become a CRD schema, got {options}")
        node = {**_structural(options[0], defs), **node}
    if "default" in node:
        node["default"] = _pruned(node["default"])
        if node["default"] in (None, "", [], {}):
            del node["default"]  # empty defaults would only clutter every stored object
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP and not (key == "additionalProperties" and "properties" not in node):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")], out[key] = value, True
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in {"items", "additionalProperties"}:
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def _pruned(value: Any) -> Any:
    """A default without nulls: the API server refuses null where the schema says string."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    return value


def _first_sentence(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def schema_of(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.pop("$defs", {})
    result: dict[str, Any] = _structural(raw, defs)
    return result


def crd(kind: kinds.Kind) -> dict[str, Any]:
    root = {
        "type": "object",
        "description": _first_sentence(sys.modules[kind.model.__module__].__doc__ or kind.kind),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of(kind.spec),
            "status": schema_of(kind.status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "oncall-operator"},
            "annotations": {"oncall.dev/generated-by": "python -m oncall_operator.api.crdgen"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [kinds.CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.wire() for c in kind.columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render(kind: kinds.Kind) -> str:
    header = "# Generated from operator/oncall_operator/api by `python -m oncall_operator.api.crdgen`. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120, allow_unicode=True)


def files() -> dict[str, str]:
    return {f"{GROUP}_{k.plural}.yaml": render(k) for k in kinds.ALL}


def default_dir() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[3] / "crds"


def default_chart_dir() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[3] / "deploy" / "helm" / "oncall-operator" / "crds"


def peering_crd(kind: str, scope: str) -> dict[str, Any]:
    """Kopf's peering CRD (group kopf.dev) as Kopf documents it: peers keep alive in ``.status``."""
    plural = f"{kind.lower()}s"
    schema = {
        "type": "object",
        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.kopf.dev",
            "annotations": {"oncall.dev/generated-by": "python -m oncall_operator.api.crdgen"},
        },
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def chart_files() -> dict[str, str]:
    """The chart's crds/: the four kinds, byte for byte as in crds/, and Kopf's peering CRDs."""
    header = "# Kopf's peering CRD, written by `python -m oncall_operator.api.crdgen`. Do not edit.\n"
    peering = {
        f"kopf.dev_{kind.lower()}s.yaml": header + yaml.safe_dump(peering_crd(kind, scope), sort_keys=False, width=120)
        for kind, scope in (("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced"))
    }
    return {**files(), **peering}


def _stale(out: pathlib.Path, wanted: dict[str, str]) -> list[str]:
    """The names in ``out`` that differ from ``wanted``, are missing, or should not be there (diffs printed)."""
    stale = []
    for name, text in wanted.items():
        path = out / name
        have = path.read_text() if path.exists() else ""
        if have != text:
            stale.append(name)
            sys.stdout.writelines(
                difflib.unified_diff(have.splitlines(True), text.splitlines(True), str(path), "models", n=1)
            )
    extra = sorted(p.name for p in out.glob("*.yaml") if p.name not in wanted) if out.exists() else []
    return stale + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oncall-operator crds", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the files differ from the models")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="directory (default: crds/)")
    parser.add_argument(
        "--chart-out",
        type=pathlib.Path,
        default=None,
        help="the Helm chart's crds/ (default: deploy/helm/oncall-operator/crds, unless --out is given)",
    )
    args = parser.parse_args(argv)
    targets: list[tuple[pathlib.Path, dict[str, str]]] = [(args.out or default_dir(), files())]
    chart = args.chart_out if args.chart_out is not None else (default_chart_dir() if args.out is None else None)
    if chart is not None:
        targets.append((chart, chart_files()))
    if args.check:
        failed = False
        for out, wanted in targets:
            stale = _stale(out, wanted)
            if stale:
                failed = True
                print(f"{out} is stale: {', '.join(stale)}; run `make crds`", file=sys.stderr)
            else:
                print(f"{out} matches the models ({len(wanted)} files)")
        return 1 if failed else 0
    for out, wanted in targets:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in wanted.items():
            (out / name).write_text(text)
        print(f"wrote {len(wanted)} CRDs to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
