"""The user's own kubeconfig, context and namespace, as kubectl would pick them, and who they are.

The plugin never holds a credential of its own: every call is the user's, so the user's RBAC
applies, and edits record the user the API server authenticated (SelfSubjectReview).
"""

import dataclasses
import datetime as dt

import kubernetes

from oncall_operator.adapters import kube
from oncall_operator.kubectl_plugin.errors import UNREACHABLE, PluginError


@dataclasses.dataclass
class Session:
    kube: kube.Kube
    namespace: str
    """The namespace of namespaced verbs: ``-n``, else the context's, else ``default``."""
    all_namespaces: bool = False
    context: str = ""


def connect(kubeconfig: str | None, context: str | None, namespace: str | None, all_namespaces: bool) -> Session:
    try:
        api = kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, FileNotFoundError, OSError) as error:
        raise PluginError(f"cannot load kubeconfig: {error}", UNREACHABLE) from error
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    default = (chosen or {}).get("context", {}).get("namespace") or "default"
    return Session(kube.Kube(api), namespace or default, all_namespaces, (chosen or {}).get("name", ""))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def whoami(k: kube.Kube) -> str:
    """The authenticated user name, as the API server sees it."""
    review = kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    try:
        answer = kubernetes.client.AuthenticationV1Api(k.api).create_self_subject_review(review)
        info = answer.status.user_info if answer.status else None
        return str(info.username) if info is not None and info.username else "unknown"
    except kubernetes.client.ApiException:
        return "unknown"
