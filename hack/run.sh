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
# The admission policies (README "Tenancy and trust"), bound with this kubeconfig's user as "the
# operator": locally the operator runs with the admin kubeconfig. ONCALL_ADMISSION=off skips them.
if [ "${ONCALL_ADMISSION:-on}" != off ]; then
    user=$("$kubectl" auth whoami -o jsonpath='{.status.userInfo.username}')
    "$kubectl" apply -f deploy/helm/oncall-operator/files/admission-policies.yaml
    "$kubectl" create configmap oncall-admission -n "$ns" --from-literal=operatorUsers="${ONCALL_OPERATOR_USERS:-$user}" \
        --from-literal=operatorNamespace="$ns" --from-literal=systemNamespaces="" --dry-run=client -o yaml | "$kubectl" apply -f -
    for policy in incident-trust operator-limits; do
        "$kubectl" apply -f - <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: oncall.dev-$policy}
spec:
  policyName: oncall.dev-$policy
  validationActions: [Deny]
  paramRef: {name: oncall-admission, namespace: $ns, parameterNotFoundAction: Deny}
EOF
    done
fi
echo "run: CRDs and examples installed; look with: $kubectl get oncall -A (KUBECONFIG=${KUBECONFIG:-default})"
# the intake on loopback unless told otherwise (ONCALL_HTTP_ADDRESS=0.0.0.0:8080 to serve others)
export ONCALL_HTTP_ADDRESS=${ONCALL_HTTP_ADDRESS:-127.0.0.1:8080}
# examples/' SMTP relay on the allowlist (empty by default elsewhere: README "Tenancy and trust")
export ONCALL_SMTP_HOSTS=${ONCALL_SMTP_HOSTS-smtp.valeo-erp.com}
exec .venv/bin/oncall-operator run --operator-namespace "$ns"
