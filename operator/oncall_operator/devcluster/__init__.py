"""The local control plane: etcd + kube-apiserver + kube-controller-manager (+ kube-scheduler).

This machine has no container engine, so kind and envtest's downloads are out; the binaries
are built from Go modules by ``hack/build-tools.sh`` and this package runs them the way
controller-runtime's envtest does (docs/ARCHITECTURE.md, "The local control plane"). Use ``ControlPlane`` as a context
manager to own a cluster for one process, or ``up``/``down``/``status`` (also as
``python -m oncall_operator.devcluster``) for a cluster shared across processes.
"""

from .errors import AddressInUseError, ComponentError, DevClusterError, MissingBinaryError
from .launcher import ControlPlane, Status, Timeouts, UpResult, down, load, status, up
from .paths import default_bindir, default_workdir, repo_root
from .state import ClusterState, ProcessRecord

__all__ = [
    "AddressInUseError",
    "ClusterState",
    "ComponentError",
    "ControlPlane",
    "DevClusterError",
    "MissingBinaryError",
    "ProcessRecord",
    "Status",
    "Timeouts",
    "UpResult",
    "default_bindir",
    "default_workdir",
    "down",
    "load",
    "repo_root",
    "status",
    "up",
]
