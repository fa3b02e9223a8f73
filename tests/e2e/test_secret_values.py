"""The notifiers' Secret values, kept for a while, against the real API server.

Every page reads its channel's Secret; :class:`kube.SecretValues` keeps a value 30 s so a storm's
pages do not each cost a request, and :meth:`~kube.SecretValues.kept` answers from memory alone, so
the executor skips the worker thread for a value read seconds ago. What must hold: a rotated
credential is read again once its time is up, a missing Secret or key is never kept (fixing it
takes effect at the next page), and a Secret that did not opt in is refused, never kept. The
clock is the test's own (virtual time), the Secrets are real.
"""

import base64
import json

import kubernetes
import pytest

from oncall_operator.adapters import kube
from oncall_operator.domain import tenancy
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.e2e


def put(kubectl: Kubectl, namespace: str, name: str, value: str, opted_in: bool = True) -> None:
    labels = {tenancy.NOTIFIER_LABEL: "true"} if opted_in else {}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "data": {"url": base64.b64encode(value.encode()).decode()},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))


def test_a_value_is_kept_for_its_time_then_read_again_and_nothing_missing_or_refused_is_kept(
    kubectl: Kubectl, namespace: str, api: kubernetes.client.ApiClient
) -> None:
    now = [0.0]
    values = kube.SecretValues(kube.Kube(api), ttl=30.0, clock=lambda: now[0])
    assert values.kept(namespace, "hook", "url") is None
    assert values.value(namespace, "hook", "url") is None  # no Secret yet
    put(kubectl, namespace, "hook", "https://hooks.example/v1")
    assert values.kept(namespace, "hook", "url") is None  # the miss was not kept
    assert values.value(namespace, "hook", "url") == "https://hooks.example/v1"

    put(kubectl, namespace, "hook", "https://hooks.example/v2")  # rotated
    now[0] = 29.0
    assert values.kept(namespace, "hook", "url") == "https://hooks.example/v1"
    assert values.value(namespace, "hook", "url") == "https://hooks.example/v1"
    now[0] = 30.0
    assert values.kept(namespace, "hook", "url") is None  # its time is up: the thread reads it again
    assert values.value(namespace, "hook", "url") == "https://hooks.example/v2"
    assert values.kept(namespace, "hook", "url") == "https://hooks.example/v2"

    assert values.value(namespace, "hook", "token") is None  # a key the Secret lacks
    assert values.kept(namespace, "hook", "token") is None

    # a tenant naming a Secret that never opted in (another team's credentials): refused, not kept
    put(kubectl, namespace, "db-password", "hunter2", opted_in=False)
    with pytest.raises(tenancy.Refused):
        values.value(namespace, "db-password", "url")
    assert values.kept(namespace, "db-password", "url") is None
