"""The command lines of etcd and the Kubernetes control-plane components, in one place.

The flags follow what controller-runtime's envtest passes (docs/ARCHITECTURE.md): loopback only,
free ports, client-certificate auth for the admin, RBAC, and a service-account key pair so the
controller-manager can create service accounts and tokens. Readiness is each component's own
health endpoint: etcd ``/health``, kube-apiserver ``/readyz``, the others ``/healthz``.
"""

from __future__ import annotations

from pathlib import Path

from .certs import PROXY_CLIENT, CertPaths
from .health import admin_context, get_ok, self_signed_context
from .runner import ComponentSpec, Ports, Probe

ALWAYS_ALLOW = "/healthz,/readyz,/livez,/metrics"
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc"
ETCD_QUOTA = 4 * 1024**3


def etcd(binary: Path, datadir: Path, timeout: float) -> ComponentSpec:
    def args(p: Ports) -> list[str]:
        client = f"http://127.0.0.1:{p['etcd-client']}"
        peer = f"http://127.0.0.1:{p['etcd-peer']}"
        return [
            "--name=default",
            f"--data-dir={datadir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",  # a throwaway dev cluster: speed over durability
            f"--quota-backend-bytes={ETCD_QUOTA}",
        ]

    def ready(p: Ports) -> bool:
        return get_ok(f"http://127.0.0.1:{p['etcd-client']}/health", expect=b'"health":"true"')

    return ComponentSpec("etcd", binary, ("etcd-client", "etcd-peer"), args, ready, timeout)


def kube_apiserver(
    binary: Path,
    etcd_url: str,
    certs: CertPaths,
    timeout: float,
    extra: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> ComponentSpec:
    """``host``: the one address it listens on and advertises (loopback, or the node's side of
    the veth when a local node must reach it)."""
    context = admin_context(certs)
    # On loopback its Endpoints would be 127.0.0.1, which validation rejects every 10s, and no pod
    # needs them. With a node, pods reach it through the `kubernetes` Service: keep Endpoints.
    reconciler = "none" if host == "127.0.0.1" else "lease"

    def args(p: Ports) -> list[str]:
        return [
            f"--etcd-servers={etcd_url}",
            f"--secure-port={p['kube-apiserver']}",
            f"--bind-address={host}",
            f"--advertise-address={host}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            f"--endpoint-reconciler-type={reconciler}",
            # The aggregation layer, set up as kubeadm does; without it the other components'
            # delegated authentication keeps logging a missing requestheader CA.
            f"--requestheader-client-ca-file={certs.proxy_ca_cert}",
            f"--requestheader-allowed-names={PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={certs.proxy_client_cert}",
            f"--proxy-client-key-file={certs.proxy_client_key}",
            *extra,
        ]

    def ready(p: Ports) -> bool:
        return get_ok(f"https://{host}:{p['kube-apiserver']}/readyz", context)

    return ComponentSpec("kube-apiserver", binary, ("kube-apiserver",), args, ready, timeout)


def kube_controller_manager(
    binary: Path, kubeconfig: Path, certs: CertPaths, timeout: float, extra: tuple[str, ...] = ()
) -> ComponentSpec:
    def args(p: Ports) -> list[str]:
        return [
            *_client_flags(kubeconfig, p["kube-controller-manager"]),
            f"--root-ca-file={certs.ca_cert}",
            f"--service-account-private-key-file={certs.sa_key}",
            "--use-service-account-credentials=false",
            f"--cluster-signing-cert-file={certs.ca_cert}",  # so CSRs get signed too
            f"--cluster-signing-key-file={certs.ca_key}",
            "--controllers=*",
            # Default is /usr/libexec/kubernetes/..., which it would create on the host.
            f"--flex-volume-plugin-dir={kubeconfig.parent / 'flexvolume'}",
            *extra,
        ]

    name = "kube-controller-manager"
    return ComponentSpec(name, binary, (name,), args, _healthz(name), timeout)


def kube_scheduler(binary: Path, kubeconfig: Path, timeout: float, extra: tuple[str, ...] = ()) -> ComponentSpec:
    name = "kube-scheduler"

    def args(p: Ports) -> list[str]:
        return [*_client_flags(kubeconfig, p[name]), *extra]

    return ComponentSpec(name, binary, (name,), args, _healthz(name), timeout)


def _client_flags(kubeconfig: Path, port: int) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        f"--authorization-always-allow-paths={ALWAYS_ALLOW}",
    ]


def _healthz(port_name: str) -> Probe:
    context = self_signed_context()

    def ready(p: Ports) -> bool:
        return get_ok(f"https://127.0.0.1:{p[port_name]}/healthz", context)

    return ready
