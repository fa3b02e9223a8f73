"""The operator's own calls to the Kubernetes API (Kopf does the watching).

A thin wrapper over the official client, whose calls block: each method is meant to run in
a worker thread (``asyncio.to_thread``) so the event loop that serves watches never waits on
the network. Not-found is a value here (``None``), not an exception, because a missing
reference is an ordinary answer for the checks.
"""

import collections.abc as cabc
import dataclasses
import time
from typing import Any

import kubernetes

from oncall_operator.api import GROUP, VERSION
from oncall_operator.domain import tenancy

TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for every call of the blocking client: a black-holed API server is an error, not a hang."""


@dataclasses.dataclass
class Kube:
    """The API clients, built once from the kubeconfig or the in-cluster service account."""

    api: Any

    @classmethod
    def connect(cls) -> "Kube":
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient())

    @property
    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.api)

    def secret_keys(self, namespace: str, name: str) -> tuple[frozenset[str], dict[str, str]] | None:
        """The keys a Secret holds (never its values) and its labels, or None when it does not exist."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise PermissionError(f"may not read Secret {name!r} in namespace {namespace!r}") from error
            raise
        keys = frozenset((secret.data or {}).keys()) | frozenset((secret.string_data or {}).keys())
        return keys, dict(secret.metadata.labels or {})

    def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> bool:
        """Merge ``status`` into the object's status subresource.

        With ``resource_version`` the write happens only if the object has not changed since
        (the API server answers 409 otherwise): returns False then, and the caller's next look
        at the newer object decides again. Conditions are a list, so without this guard a merge
        patch could drop a condition another writer has just added. An object deleted meanwhile
        (404) has no status left to write: False too, and its DELETED event follows.
        """
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT,
            )
        except kubernetes.client.ApiException as error:
            if (error.status == 409 and resource_version) or error.status == 404:
                return False
            raise
        return True

    def secret_value(self, namespace: str, name: str, key: str, opted_in: bool = False) -> str | None:
        """One value of a Secret, decoded, or None when the Secret or the key is missing.

        ``opted_in``: read only a Secret labelled for the notifiers (:func:`tenancy.secret_refusal`);
        raises :class:`tenancy.Refused` for any other, before its value leaves this method.
        """
        import base64

        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        refused = tenancy.secret_refusal(name, secret.metadata.labels) if opted_in else None
        if refused is not None:
            raise tenancy.Refused(refused)
        raw = (secret.data or {}).get(key)
        return None if raw is None else base64.b64decode(raw).decode()

    def put_config_map(
        self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any], labels: dict[str, str]
    ) -> None:
        """Create the ConfigMap, owned by ``owner`` (garbage-collected with it), or replace its data."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
            "data": data,
        }
        try:
            self.core.create_namespaced_config_map(namespace, body, _request_timeout=TIMEOUT)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
            self.core.patch_namespaced_config_map(name, namespace, {"data": data}, _request_timeout=TIMEOUT)

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            found = self.core.read_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.data or {})


class SecretValues:
    """Secret values the notifiers use, each kept for ``ttl`` seconds after it is read; only opted-in Secrets.

    Every page would otherwise read its channel's Secret first: one request per notification
    while the API server is busiest (an alert storm). A rotated credential is picked up within
    ``ttl``; a missing Secret or key is not kept, so fixing it takes effect at the next send.
    """

    def __init__(self, kube: Kube, ttl: float = 30.0, clock: cabc.Callable[[], float] = time.monotonic) -> None:
        self.kube, self.ttl, self.clock = kube, ttl, clock
        self._kept: dict[tuple[str, str, str], tuple[float, str]] = {}

    def kept(self, namespace: str, name: str, key: str) -> str | None:
        """The value read less than ``ttl`` ago, or None: no I/O, so the event loop asks this before a thread."""
        found = self._kept.get((namespace, name, key))
        return found[1] if found is not None and self.clock() - found[0] < self.ttl else None

    def value(self, namespace: str, name: str, key: str) -> str | None:
        if (found := self.kept(namespace, name, key)) is not None:
            return found
        value = self.kube.secret_value(namespace, name, key, opted_in=True)
        if value is None:
            self._kept.pop((namespace, name, key), None)
        else:
            self._kept[(namespace, name, key)] = (self.clock(), value)
        return value
