# syntax=docker/dockerfile:1
# The operator image the Helm chart runs (deploy/helm/oncall-operator: image.repository/tag).
#
#   docker build -t oncall-operator:0.1.0 .
#
# Two stages: the first builds wheels of the package and of every dependency; the second
# installs them without network or compiler and runs as an unprivileged user (uid 65532, the
# chart's runAsUser) on a root filesystem the chart mounts read-only. The build machines of
# this project have no container engine, so no image was ever built here: the two steps were
# run by hand in a scratch virtualenv (pip wheel, then pip install --no-index), and
# tests/e2e/test_helm.py checks that this file and the chart agree (user, command, ports).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/oncall_operator ./operator/oncall_operator
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 65532 oncall \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin oncall
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels oncall-operator
USER 65532:65532
# 8080: Alertmanager intake, /metrics, /healthz, /readyz; 8081: Kopf's liveness (run --liveness)
EXPOSE 8080 8081
ENTRYPOINT ["oncall-operator"]
CMD ["run", "--liveness=http://0.0.0.0:8081/healthz"]
