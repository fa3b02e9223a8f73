#!/usr/bin/env bash
# `make run`: use the configured cluster when it answers; otherwise start the local control
# plane, with a real node when this machine can run one (root, cgroup memory controller).
# Then install the CRDs and examples/ and run the operator in the foreground.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
kubectl="$repo/.cluster/bin/kubectl"
ns=${ONCALL_NAMESPACE:-oncall-system}

if "$kubectl" version --request-timeout=5s >/dev/null 2>&1; then
    echo "run: using the configured cluster (context $("$kubectl" config current-context 2>/dev/null || echo in-cluster))"
else
    if why=$(.venv/bin/oncall-operator dev-cluster can-run-node); then
        echo "run: no configured cluster answers; starting the local control plane and a real node"
        .venv/bin/oncall-operator dev-cluster up --node
    else
        echo "run: no configured cluster answers; starting the local control plane (no real node: $why)"
        .venv/bin/oncall-operator dev-cluster up
    fi
    export KUBECONFIG="$repo/.cluster/kubeconfig"
fi

"$kubectl" apply --server-side --force-conflicts -f crds/
"$kubectl" wait --for condition=established --timeout=60s crd -l app.kubernetes.io/part-of=oncall-operator
"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f -
"$kubectl" apply -n "$ns" -f examples/
echo "run: CRDs and examples installed; look with: $kubectl get oncall -A (KUBECONFIG=${KUBECONFIG:-default})"
exec .venv/bin/oncall-operator run --operator-namespace "$ns"
