"""The edges: the Kubernetes API, notifiers, the HTTP intake, metrics.

Adapters translate between the domain's plain values and the outside world; they hold no
policy. Handlers and the executor call them, the domain never does.
"""
