"""The local node's images, built from this repository without Docker or a registry.

No registry is reachable from the node and there is no container engine, so every image a
pod runs is built here as an OCI archive (``oci``) and imported into the node's containerd:

- ``pause`` (the CRI sandbox image) and ``memory-hog`` (the OOM demo's workload): static Go
  binaries from ``hack/images`` in a one-file layer;
- ``oncall-operator:<version>``, the chart's default image: a Debian root filesystem made by
  debootstrap from Debian's own packages (the mirror apt uses), with python3; the package's
  dependencies installed as wheels from PyPI, and the package as the wheel built from this
  checkout, in a virtualenv at ``/opt/oncall-operator``; the user (65532), entrypoint and ports
  of the Dockerfile.

Everything slow is cached outside the repository (``ONCALL_IMAGES_CACHE``, default
``~/.cache/oncall-operator/images``), keyed by what it is made from: the root filesystem by its
recipe, the dependencies by ``pyproject.toml``, the Go binaries and the package by their sources.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import oci
from .errors import DevClusterError

VERSION = "0.1.0"
PAUSE = f"oncall.local/pause:{VERSION}"
HOG = f"oncall.local/memory-hog:{VERSION}"
OPERATOR = f"oncall-operator:{VERSION}"
SUITE = "bookworm"
PYTHON = "python3.11"
VENV = "opt/oncall-operator"
ROOTFS_PACKAGES = ("python3", "ca-certificates")
ROOTFS_RECIPE = 2  # bump when the recipe below changes
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var/cache/apt", "var/lib/apt/lists")
USER = "65532"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oncall-operator" / "images"
    path = Path(os.environ.get("ONCALL_IMAGES_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_all(repo: Path, out: Path) -> dict[str, Path]:
    """Every image's archive, in ``out``: image name -> OCI archive."""
    out.mkdir(parents=True, exist_ok=True)
    cache = cache_dir()
    bins = go_binaries(repo, cache)
    archives = {}
    for name, binary, entry, cmd in (
        (PAUSE, bins["pause"], "/pause", []),
        (HOG, bins["memory-hog"], "/memory-hog", ["64"]),
    ):
        files = {entry[1:]: oci.File(binary.read_bytes(), 0o755)}
        layer = oci.layer_from_files(out / f"{binary.name}.layer.tar", files)
        archive = out / f"{binary.name}.oci.tar"
        oci.write_archive(archive, name, [layer], {"Entrypoint": [entry], "Cmd": cmd, "User": USER})
        layer.path.unlink()
        archives[name] = archive
    archives[OPERATOR] = operator_image(repo, cache)
    return archives


def go_binaries(repo: Path, cache: Path) -> dict[str, Path]:
    """``hack/images``'s programs, static, built once per version of their sources."""
    src = repo / "hack" / "images"
    dest = cache / f"bin-{_digest(src)}"
    if not (dest / ".complete").exists():
        tmp = Path(f"{dest}.tmp.{os.getpid()}")
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{tmp}/", "./memory-hog", "./pause"], src, env)
        (tmp / ".complete").touch()
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return {name: dest / name for name in ("memory-hog", "pause")}


def operator_image(repo: Path, cache: Path) -> Path:
    """The operator's image: Debian + python3, the dependencies, the package, as the Dockerfile says.

    The archive is cached too (by its layers), since copying the root filesystem costs seconds."""
    layers = [rootfs_layer(cache), dependencies_layer(repo, cache), package_layer(repo, cache)]
    key = hashlib.sha256(" ".join(layer.digest for layer in layers).encode()).hexdigest()[:16]
    archive = cache / f"operator-{key}.oci.tar"
    if archive.exists():
        return archive
    config = {
        "User": f"{USER}:{USER}",
        "Entrypoint": ["oncall-operator"],
        "Cmd": ["run", "--liveness=http://0.0.0.0:8081/healthz"],
        "ExposedPorts": {"8080/tcp": {}, "8081/tcp": {}},
        "Env": [
            f"PATH=/{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"VIRTUAL_ENV=/{VENV}",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
        ],
        "WorkingDir": "/",
    }
    oci.write_archive(archive, OPERATOR, layers, config)
    _forget_old(cache, "operator-*.oci.tar", archive)
    return archive


def rootfs_layer(cache: Path) -> oci.Layer:
    """Debian ``SUITE`` (minbase) with python3, from the mirror apt uses; the user 65532 added."""

    def fill(tree: Path) -> None:
        include = ",".join(ROOTFS_PACKAGES)
        _run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(tree), mirror()], cache)
        for rel in TRIM:
            shutil.rmtree(tree / rel, ignore_errors=True)
            (tree / rel).mkdir(parents=True, exist_ok=True)
        with (tree / "etc/passwd").open("a") as f:
            f.write(f"oncall:x:{USER}:{USER}::/nonexistent:/usr/sbin/nologin\n")
        with (tree / "etc/group").open("a") as f:
            f.write(f"oncall:x:{USER}:\n")

    key = f"{ROOTFS_RECIPE} {SUITE} {ROOTFS_PACKAGES}"
    return _cached_layer(cache, f"rootfs-{SUITE}", key, fill, skip=("dev", "proc", "sys", "run", "tmp"))


def dependencies_layer(repo: Path, cache: Path) -> oci.Layer:
    """The virtualenv with the package's dependencies (wheels only, nothing compiled here)."""
    if sys.version_info[:2] != (3, 11):  # the wheels must fit Debian bookworm's python3.11
        raise DevClusterError(f"the operator image is built with Python 3.11 (Debian {SUITE}'s), not {sys.version}")
    deps = _dependencies((repo / "pyproject.toml").read_text())

    def fill(tree: Path) -> None:
        venv = tree / VENV
        (venv / "bin").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
        (venv / "bin" / "python").symlink_to(f"/usr/bin/{PYTHON}")
        (venv / "bin" / "python3").symlink_to("python")
        site = venv / "lib" / PYTHON / "site-packages"
        _pip("install", "--quiet", "--only-binary=:all:", "--target", str(site), *deps)
        shutil.rmtree(site / "bin", ignore_errors=True)

    return _cached_layer(cache, "deps", f"{sys.version_info[:2]} {deps}", fill)


def package_layer(repo: Path, cache: Path) -> oci.Layer:
    """This checkout's package: its wheel, installed into the virtualenv, and the entrypoint."""

    def fill(tree: Path) -> None:
        wheels = tree.parent / f"{tree.name}.wheels"
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(repo))
        venv = tree / VENV
        site = venv / "lib" / PYTHON / "site-packages"
        _pip("install", "--quiet", "--no-deps", "--no-compile", "--target", str(site), *map(str, wheels.glob("*.whl")))
        shutil.rmtree(wheels)
        shutil.rmtree(site / "bin", ignore_errors=True)
        entry = venv / "bin" / "oncall-operator"
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(f"#!/{VENV}/bin/python\nimport sys\nfrom oncall_operator.cli import main\nsys.exit(main())\n")
        entry.chmod(0o755)

    sources = f"{_digest(repo / 'operator' / 'oncall_operator')} {_digest(repo / 'pyproject.toml')}"
    layer = _cached_layer(cache, "package", sources, fill)
    _forget_old(cache, "package-*.tar", layer.path)
    return layer


def _cached_layer(
    cache: Path, kind: str, key: str, fill: Callable[[Path], None], skip: tuple[str, ...] = ()
) -> oci.Layer:
    """The layer ``<kind>-<hash of key>.tar`` from the cache, else made by ``fill``ing a directory;
    one builder at a time on this machine (other checkouts share the cache)."""
    layer = cache / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tar"
    with _locked(cache / f"{kind}.lock"):
        if not layer.exists():
            tree = cache / f"{layer.stem}.tmp"
            shutil.rmtree(tree, ignore_errors=True)
            tree.mkdir()
            fill(tree)
            built = oci.layer_from_tree(layer.with_suffix(".tmp.tar"), tree, skip)
            built.path.rename(layer)
            shutil.rmtree(tree)
    return oci.Layer(layer, *_layer_digest(layer))


def _forget_old(cache: Path, pattern: str, keep: Path, newest: int = 3) -> None:
    """Keep ``keep`` and the newest others (other checkouts on this machine may be using them)."""
    others = sorted((p for p in cache.glob(pattern) if p != keep), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[newest - 1 :]:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)


def mirror() -> str:
    """``ONCALL_DEBIAN_MIRROR``, else the first Debian mirror apt is configured with."""
    if os.environ.get("ONCALL_DEBIAN_MIRROR"):
        return os.environ["ONCALL_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for src in sources:
        text = src.read_text() if src.exists() else ""
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M)
        found = found or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s", text, re.M)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def import_all(socket: Path, archives: dict[str, Path]) -> None:
    """Import the archives into containerd's ``k8s.io`` namespace (the one CRI serves)."""
    for archive in archives.values():
        _run(["ctr", f"--address={socket}", "--namespace=k8s.io", "images", "import", str(archive)], archive.parent)


def _dependencies(pyproject: str) -> list[str]:
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.M | re.S)
    if not block:
        raise DevClusterError("pyproject.toml has no [project] dependencies list")
    return re.findall(r'"([^"]+)"', block.group(1))


def _digest(path: Path) -> str:
    """A digest of a file, or of every file's name and content under a directory."""
    sha = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if "__pycache__" not in p.parts)
    files = [f for f in files if f.is_file()]
    for f in files:
        sha.update(str(f.relative_to(path.parent)).encode())
        sha.update(f.read_bytes())
    return sha.hexdigest()[:16]


def _layer_digest(layer: Path) -> tuple[str, int]:
    sidecar = layer.with_suffix(".sha256")
    if sidecar.exists() and sidecar.stat().st_mtime >= layer.stat().st_mtime:
        return sidecar.read_text().strip(), layer.stat().st_size
    digested = oci.digested(layer)
    sidecar.write_text(digested.digest)
    return digested.digest, digested.size


def _pip(*args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "pip", *args], Path.cwd(), env)


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise DevClusterError(f"`{' '.join(argv[:4])} ...` failed ({proc.returncode}): {tail}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder of a cached layer at a time on this machine (other worktrees share the cache)."""
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
