"""The pure core: schedule resolution, escalation, remediation planning, alert identity, checks.

Nothing here does I/O, reads the clock or imports Kopf, the Kubernetes client, aiohttp or
prometheus_client: ``now`` is an argument and timers are returned as effects. That keeps the
logic testable with tables and virtual time, and the import-linter contract enforces it.
"""
