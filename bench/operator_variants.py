"""The operator with one Kopf setting changed, for before/after figures from the same machine and run.

The bench must not edit the operator's modules (another engineer owns them), yet a proposed fix
needs figures. Kopf applies every ``@kopf.on.startup`` handler's changes to ``settings``, so a
handler registered here, after the operator's own, overrides one setting and nothing else:

    python bench/operator_variants.py VARIANT run [oncall-operator run's arguments]

Variants:
- ``baseline``: the operator exactly as ``oncall-operator run``.
- ``posting-warning``: ``settings.posting.level = logging.WARNING``. Kopf posts every per-object
  log line at INFO or above as a Kubernetes Event, including "Handler '...' succeeded." and
  "Timer '...' succeeded." for every handler run on every Incident tick; the operator's own Events
  (``kopf.info``/``kopf.warn``/``kopf.event``) are posted directly and are not affected.
- ``executor-32``: the event loop's default executor with 32 threads instead of Python's
  ``min(32, cores + 4)`` (6 here). Every blocking API call of the operator goes through
  ``asyncio.to_thread``, so the intake, the escalation ticks of every open Incident and the OOM
  remediations all queue for those few threads.
- ``both``: the two changes together.
"""

import asyncio
import concurrent.futures
import logging
import sys
from typing import Any

import kopf

VARIANTS = ("baseline", "posting-warning", "executor-32", "both")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in VARIANTS:
        print(f"usage: {sys.argv[0]} {{{','.join(VARIANTS)}}} run [...]", file=sys.stderr)
        return 2
    variant = sys.argv.pop(1)
    from oncall_operator import cli, handlers  # the operator's own handlers register first

    assert handlers
    if variant in ("posting-warning", "both"):

        @kopf.on.startup()
        def posting_warning(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.posting.level = logging.WARNING

    if variant in ("executor-32", "both"):

        @kopf.on.startup()
        async def executor_32(**_: Any) -> None:  # async: it must run on the operator's own loop
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="oncall-io")
            asyncio.get_running_loop().set_default_executor(pool)

    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
