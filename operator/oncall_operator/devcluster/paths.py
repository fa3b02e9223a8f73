"""Where the dev cluster lives by default: ``<repo>/.cluster``, binaries in ``.cluster/bin``.

The repo is the nearest directory, from the current one upwards, holding ``pyproject.toml``,
so ``make cluster-up`` and a test run from a subdirectory agree on one cluster.
"""

from __future__ import annotations

from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """Nearest parent of ``start`` (default: cwd) containing pyproject.toml, else ``start``."""
    here = (start or Path.cwd()).absolute()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return here


def default_workdir(start: Path | None = None) -> Path:
    return repo_root(start) / ".cluster"


def default_bindir(workdir: Path) -> Path:
    return workdir / "bin"
