"""``kubectl oncall``: the on-call handbook from the terminal and a local board in the browser.

    kubectl oncall who [SCHEDULE] [--at TIME]        who is on call now (or at TIME) and next
    kubectl oncall incidents [-A] [-o wide|json|yaml]  the open incidents, by severity then age
    kubectl oncall ack INCIDENT                      acknowledge: stops the escalation
    kubectl oncall resolve INCIDENT [--note TEXT]    resolve: stops reminders, tells who was paged
    kubectl oncall timeline INCIDENT                 what happened, in order
    kubectl oncall approve INCIDENT ACTION           approve a runbook action that awaits approval
    kubectl oncall check INCIDENT N                  tick item N (1-based) of the incident's checklist
    kubectl oncall report INCIDENT                   the post-incident review report
    kubectl oncall override SCHEDULE --user U --from T --to T [--role R] [--reason TEXT]
    kubectl oncall calendar SCHEDULE [--days N]      the schedule as an iCalendar feed (RFC 5545)
    kubectl oncall board [--port N]                  a local web page: incidents, ack/resolve, timelines
    kubectl oncall diff -f FILE | OLD.yaml NEW.yaml  who is on call / paged before and after, by hour
    kubectl oncall maintenance start|stop [NAME]     an ad-hoc maintenance window (--for 2h, --mutes Pages)
    kubectl oncall completion bash|zsh               completion for kubectl-oncall typed directly

Global flags (``-n``, ``-A``, ``--context``, ``--kubeconfig``, ``-o``) go anywhere on the line, as
with kubectl. kubectl finds this as ``kubectl-oncall`` on PATH, and completes it through
``kubectl_complete-oncall`` (both installed with the package). Exit codes: see :mod:`.errors`.
"""


def main(argv: list[str] | None = None) -> int:
    """The ``kubectl-oncall`` executable (imported on call, so ``kubectl_complete-oncall`` stays light)."""
    from oncall_operator.kubectl_plugin import commands

    return commands.main(argv)
