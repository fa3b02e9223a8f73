"""The local control plane runs the real controllers: Deployments make ReplicaSets and Pods."""

from tests.conftest import eventually
from tests.e2e.conftest import Kubectl


def test_deployment_gets_replicaset_and_pods_with_owner_references(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run(
        "create",
        "deployment",
        "web",
        "--image=registry.invalid/web:1",
        "--replicas=2",
        "-n",
        namespace,
    )
    deployment = kubectl.json("get", "deployment", "web", "-n", namespace)

    def replicasets() -> list[dict[str, object]]:
        return kubectl.json("get", "replicasets", "-n", namespace)["items"]  # type: ignore[no-any-return]

    [rs] = eventually(replicasets, 60, what="the Deployment controller to make a ReplicaSet")
    [owner] = rs["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Deployment",
        "web",
        deployment["metadata"]["uid"],
        True,
    )

    def pods() -> list[dict[str, object]]:
        items = kubectl.json("get", "pods", "-n", namespace)["items"]
        return items if len(items) == 2 else []

    for pod in eventually(pods, 60, what="the ReplicaSet controller to make 2 Pods"):
        [owner] = pod["metadata"]["ownerReferences"]  # type: ignore[index]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "ReplicaSet",
            rs["metadata"]["name"],
            rs["metadata"]["uid"],
        )
        assert pod["status"]["phase"] == "Pending"  # type: ignore[index]  # no kubelet here


def test_every_namespace_gets_its_default_service_account(kubectl: Kubectl, namespace: str) -> None:
    names = eventually(
        lambda: [sa["metadata"]["name"] for sa in kubectl.json("get", "serviceaccounts", "-n", namespace)["items"]],
        30,
        what="the service-account controller",
    )
    assert names == ["default"]
