"""The admin kubeconfig: client-certificate auth with everything inline.

Inline data (rather than paths to the PEM files) keeps the file usable after being copied
elsewhere, e.g. into a container or another checkout. The file is written by hand, not with a
YAML library: every value is a fixed name, a URL or base64, so nothing needs quoting.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .certs import CertPaths

NAME = "oncall-dev"

_TEMPLATE = """\
apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: admin
current-context: {name}
"""


def write_kubeconfig(path: Path, server: str, certs: CertPaths) -> None:
    """Write an admin kubeconfig for ``server`` to ``path`` (mode 0600: it holds a key)."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    text = _TEMPLATE.format(
        name=NAME,
        server=server,
        ca=b64(certs.ca_cert),
        cert=b64(certs.admin_cert),
        key=b64(certs.admin_key),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        f.write(text)
