"""Where a py-spy profile of the operator's event loop goes: main thread only, idle excluded, by area and frame.

``bench/storm.py --profile`` and ``bench/cluster_scale.py --profile`` write py-spy's raw collapsed
stacks (``storm-profiles/profile-<n>.txt``); their own summary counts every thread, and the worker
threads' waits swamp it. This reads one such file and prints what the storm summaries in
``bench/results/SUMMARY.md`` quote: the share of the main thread's busy samples by the area of the
innermost frame that names one (pydantic validation, JSON, aiohttp, TLS, asyncio, the operator's
layers), the top frames by own samples, ``model_validate`` by its nearest operator caller, and the
operator's functions by inclusive share.

    python bench/profile_areas.py /tmp/out/storm-profiles/profile-2000.txt
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys

MAIN = "_run_module_as_main"
IDLE = ("EpollSelector.select", "select (selectors.py")
AREAS = (
    ("pydantic validate", re.compile(r"model_validate|validate_python|pydantic/main.py:(2[0-9][0-9]|792)")),
    ("json", re.compile(r"json/|from_json|to_json")),
    ("ssl", re.compile(r"ssl\.py")),
    ("aiohttp client", re.compile(r"aiohttp/(client|connector|http_writer|streams)")),
    ("aiohttp server", re.compile(r"aiohttp/web")),
    ("aiohttp other", re.compile(r"aiohttp/")),
    ("logging", re.compile(r"logging/")),
    ("prometheus", re.compile(r"prometheus_client/")),
    ("kopf", re.compile(r"kopf/")),
    ("domain", re.compile(r"oncall_operator/domain/")),
    ("api models", re.compile(r"oncall_operator/api/")),
    ("executor", re.compile(r"oncall_operator/executor/")),
    ("adapters", re.compile(r"oncall_operator/adapters/")),
    ("asyncio", re.compile(r"asyncio/")),
)
OWN = "oncall_operator/"


def main_samples(path: pathlib.Path) -> list[tuple[list[str], int]]:
    """The main thread's stacks (outermost frame first) and their sample counts, idle ones left out."""
    found = []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not n.isdigit() or not frames or not frames[0].startswith(MAIN):
            continue
        if any(frames[-1].startswith(idle) for idle in IDLE):
            continue
        found.append((frames, int(n)))
    return found


def area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in AREAS:
            if pattern.search(frame):
                return name
    return "other"


def report(path: pathlib.Path, top: int = 25) -> str:
    samples = main_samples(path)
    total = sum(n for _, n in samples) or 1
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    validators: collections.Counter[str] = collections.Counter()
    for frames, n in samples:
        areas[area(frames)] += n
        own[frames[-1]] += n
        for frame in dict.fromkeys(f for f in frames if OWN in f):
            inclusive[frame] += n
        if "model_validate" in frames[-1] or any("model_validate" in f for f in frames[-3:]):
            caller = next((f for f in reversed(frames) if OWN in f), "?")
            validators[caller] += n
    pct = lambda n: f"{100 * n / total:5.1f}%"  # noqa: E731
    lines = [f"# {path}: main-thread samples, idle excluded: {total}", "## by area"]
    lines += [f"{pct(n)} {name}" for name, n in areas.most_common()]
    lines += ["## top frames by own samples"] + [f"{pct(n)} {f}" for f, n in own.most_common(top)]
    lines += ["## model_validate by nearest operator caller"] + [f"{pct(n)} {f}" for f, n in validators.most_common(12)]
    lines += ["## operator frames, inclusive"] + [f"{pct(n)} {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(pathlib.Path(sys.argv[1])))
