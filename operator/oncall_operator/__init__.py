"""oncall-operator: an on-call handbook as Kubernetes objects, and the operator that acts on it.

The package is layered (docs/ARCHITECTURE.md): ``api`` holds the schema, ``domain`` the pure
logic, ``adapters`` the edges to Kubernetes and notifiers, ``executor`` the imperative shell (one
module per flow), ``handlers`` the Kopf registrations.
"""

__version__ = "0.1.0"
