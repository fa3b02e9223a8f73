"""The real node's configuration files: containerd (CRI), CNI, kubelet, kube-proxy.

Every path points inside the cluster directory, so a stopped node leaves nothing of its own
elsewhere (what the binaries write regardless is in ``hostsnap``). The settings this machine
needs, and why:

- containerd: ``restrict_oom_score_adj`` (root here lacks CAP_SYS_RESOURCE: without it every
  sandbox fails writing ``/proc/self/oom_score_adj``); the sandbox image is the locally built
  pause image (no registry is reachable); pods' network namespaces under containerd's state
  directory, not ``/run/netns``.
- CNI: a bridge with host-local addresses, masquerading what pods send outside their subnet
  (only the host's veth end is reachable: the node namespace has no default route).
- kubelet: cgroup v1 allowed (``failCgroupV1: false``), cgroupfs, swap tolerated, image GC off
  (the images cannot be pulled again), eviction thresholds low (a dev machine's disk is not a
  node's), pods' cgroups under our own root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import cgroups
from .netns import NODE_IP

NODE_NAME = "oncall-node"
POD_CIDR = "10.244.0.0/24"
CNI_BIN = Path("/usr/lib/cni")
KUBELET_PORT, KUBELET_HEALTHZ, PROXY_HEALTHZ, PROXY_METRICS = 10250, 10248, 10256, 10249


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its files, under ``<workdir>/node``."""

    root: Path

    @classmethod
    def under(cls, workdir: Path) -> NodePaths:
        return cls(workdir / "node")

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state(self) -> Path:
        return self.root / "node.json"


def containerd_toml(p: NodePaths, sandbox_image: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{p.containerd_root}"
state = "{p.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{p.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{p.root / "opt"}"
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{p.root / "runc"}"
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{p.cni_conf}"
"""


def cni_conflist(p: NodePaths) -> str:
    bridge = {
        "type": "bridge",
        "bridge": "oncall-br0",
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": POD_CIDR}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(p.root / "ipam"),
        },
    }
    return json.dumps({"cniVersion": "1.0.0", "name": "oncall-node", "plugins": [bridge]}, indent=2)


def kubelet_yaml(p: NodePaths, ca_cert: Path) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroups.ROOT}",
        "failSwapOn": False,
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": NODE_IP,
        "healthzPort": KUBELET_HEALTHZ,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{p.socket}",
        "podLogsDir": str(p.root / "pod-logs"),
        "volumePluginDir": str(p.root / "volume-plugins"),  # default: /usr/libexec/kubernetes/...
        "resolvConf": "",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        "maxPods": 60,
        "registerNode": True,
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def kubelet_args(p: NodePaths) -> list[str]:
    return [
        f"--config={p.kubelet_config}",
        f"--kubeconfig={p.kubeconfig}",
        f"--root-dir={p.kubelet_root}",
        f"--cert-dir={p.root / 'kubelet-pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=1",
    ]


def kube_proxy_args(p: NodePaths) -> list[str]:
    return [
        f"--kubeconfig={p.kubeconfig}",
        f"--hostname-override={NODE_NAME}",
        "--proxy-mode=iptables",
        f"--cluster-cidr={POD_CIDR}",
        f"--healthz-bind-address={NODE_IP}:{PROXY_HEALTHZ}",
        f"--metrics-bind-address={NODE_IP}:{PROXY_METRICS}",
        # leave the conntrack sysctls as they are (the host's, partly shared with the node)
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--iptables-localhost-nodeports=false",
    ]
