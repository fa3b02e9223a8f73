"""Readiness probes: plain HTTP for etcd, HTTPS with the admin client cert for the kube parts.

Probes go straight to 127.0.0.1 with proxies disabled (a developer's ``https_proxy`` must not
swallow them) and return a bool: the caller owns the deadline and the diagnosis.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request

from .certs import CertPaths

_NO_PROXY = urllib.request.ProxyHandler({})


def admin_context(certs: CertPaths) -> ssl.SSLContext:
    """TLS context that verifies the apiserver against the dev CA and presents the admin cert."""
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    return ctx


def self_signed_context() -> ssl.SSLContext:
    """TLS context for controller-manager/scheduler, which serve a self-generated cert."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def get_ok(url: str, context: ssl.SSLContext | None = None, expect: bytes = b"", timeout: float = 1.0) -> bool:
    """True if GET ``url`` answers 200 with a body containing ``expect``."""
    handlers: list[urllib.request.BaseHandler] = [_NO_PROXY]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as resp:
            body = resp.read(4096)
            return bool(resp.status == 200) and expect in body
    except (OSError, http.client.HTTPException, ValueError):
        return False
