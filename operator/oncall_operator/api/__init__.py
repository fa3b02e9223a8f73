"""The four kinds of oncall.dev/v1alpha1 as pydantic models: the project's only schema.

``crds/`` is generated from these models by :mod:`oncall_operator.api.crdgen`; the operator,
the kubectl plugin and the tests parse objects with the same models, so there is one name and
one shape for every field.
"""

GROUP = "oncall.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
