"""OCI image archives written from files and directories, without a container engine.

An image is a config, a manifest and layers (plain tars), addressed by sha256, in the OCI
image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) packed as one tar: what
``ctr images import`` reads. The index entry carries ``io.containerd.image.name``, the full
name CRI looks images up by (``oncall-operator:0.1.0`` is ``docker.io/library/oncall-operator:0.1.0``).
Layers are left uncompressed: they are imported once on this machine, never shipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EPOCH = 0  # mtime of synthesized entries: the same inputs make the same digests


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk and its digest (uncompressed, so its digest is also its diff id)."""

    path: Path
    digest: str
    size: int


@dataclass(frozen=True)
class File:
    """A file to put in a layer: its content, or a symlink target, and its mode."""

    data: bytes = b""
    mode: int = 0o644
    link: str = ""


def full_name(ref: str) -> str:
    """A reference as CRI normalizes it: ``name:tag`` -> ``docker.io/library/name:tag``."""
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def layer_from_files(out: Path, files: dict[str, File]) -> Layer:
    """A layer of the given files (parent directories added), e.g. one static binary."""
    dirs = sorted({str(Path(p).parent) for p in files} - {"."})
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in _with_parents(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name, f in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = EPOCH, f.mode
            if f.link:
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return digested(out)


def layer_from_tree(out: Path, root: Path, skip: Iterable[str] = ()) -> Layer:
    """A layer of everything under ``root`` (owners, modes, links kept); ``skip``: relative
    directories kept empty (e.g. ``dev``, ``proc``)."""
    skipped = set(skip)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for here, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(here, root)
            if rel != ".":
                tar.add(here, arcname=rel, recursive=False, filter=_anonymous)
            if rel in skipped:
                dirnames.clear()
                continue
            links = sorted(d for d in dirnames if os.path.islink(os.path.join(here, d)))
            for name in [*sorted(filenames), *links]:
                arc = os.path.normpath(os.path.join(rel, name))
                tar.add(os.path.join(here, name), arcname=arc, recursive=False, filter=_anonymous)
            dirnames[:] = sorted(d for d in dirnames if d not in links)
    return digested(out)


def write_archive(out: Path, name: str, layers: list[Layer], config: dict[str, Any]) -> None:
    """The OCI layout of one linux/amd64 image named ``name``, as a tar at ``out``."""
    image = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    config_blob = _json(image)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": _sha(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    manifest_blob = _json(manifest)
    ref = {
        "mediaType": MANIFEST,
        "digest": _sha(manifest_blob),
        "size": len(manifest_blob),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {
            "io.containerd.image.name": full_name(name),
            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
        },
    }
    index = _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": [ref]})
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        _add_bytes(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index)
        for blob in (config_blob, manifest_blob):
            _add_bytes(tar, _blob_name(_sha(blob)), blob)
        for layer in layers:
            tar.add(layer.path, arcname=_blob_name(layer.digest), recursive=False)
    os.replace(tmp, out)


def _with_parents(dirs: list[str]) -> list[str]:
    every = {str(p) for d in dirs for p in (Path(d), *Path(d).parents) if str(p) != "."}
    return sorted(every, key=lambda d: (d.count("/"), d))


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info


def digested(path: Path) -> Layer:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return Layer(path, f"sha256:{sha.hexdigest()}", path.stat().st_size)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _sha(blob: bytes) -> str:
    return f"sha256:{hashlib.sha256(blob).hexdigest()}"


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), EPOCH
    tar.addfile(info, io.BytesIO(data))
