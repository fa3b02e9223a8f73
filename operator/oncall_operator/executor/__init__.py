"""The imperative shell: one module per flow, each reading handler -> executor -> domain and never back up.

The domain decides (pure, no I/O, no clock); the adapters move bytes; the modules here take
the time, read what a decision needs, ask the domain, and write what it decided:

- :mod:`.oom`: an OOM kill -> the workload's patch and the Incident (from the pod watch);
- :mod:`.alerts`: an Alertmanager notification -> its Incident (from the intake);
- :mod:`.actions`: a runbook's actions on an alert Incident, one per pass;
- :mod:`.escalation`: the page that is due, claimed on the Incident, sent, recorded;
- :mod:`.settle`: a Mitigated OOM Incident resolved after its quiet period;
- :mod:`.opening`, :mod:`.ready`, :mod:`.review`: an Incident's first status, the Ready checks
  of every kind, the post-incident review.

What they share: :mod:`.context` (every client and in-memory store, made once), :mod:`.indices`
(the trusted in-memory indices and readiness verdicts), :mod:`.patching` (dry-runs, the patch,
one retry policy, Events, per-workload locks), :mod:`.open_incidents` (the loop that looks at
each open Incident when it is due), :mod:`.runtime` (start-up and shut-down, in order).
The flows do not import each other (import-linter checks it), except the loop, which drives
escalation and settle.
"""
