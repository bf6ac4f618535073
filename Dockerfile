# The project's image: it serves models (`modelops serve`, the Kubernetes serving Deployment's
# command) and runs flows for the kubernetes work pool (module entrypoints, flows.*:*), from a
# non-editable install of this repository.
#
#   docker build -t modelops-flows:0.1.0 .
#   docker build --build-arg EXTRAS=text -t modelops-flows-text:0.1.0 .   # + transformers/torch
#
# For EXTRAS=text, point pip at the CPU build of torch (PIP_EXTRA_INDEX_URL=
# https://download.pytorch.org/whl/cpu) unless the image runs on GPUs: the plain pin pulls CUDA.
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=true \
    MLFLOW_ENABLE_TELEMETRY=false \
    GX_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MODELOPS_HOME=/var/lib/modelops

WORKDIR /opt/modelops
COPY pyproject.toml README.md ./
COPY modelops ./modelops
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && pip check \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin modelops \
    && mkdir -p /var/lib/modelops && chown 10001 /var/lib/modelops

USER 10001
WORKDIR /var/lib/modelops
EXPOSE 8080
CMD ["modelops", "--help"]
