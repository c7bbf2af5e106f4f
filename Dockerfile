# igneous worker / CLI image.
#
#   docker build -t igneous .
#   docker run --rm igneous --help
#   docker run --rm -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY igneous execute sqs://jobs
#
# Two stages: the first builds wheels for igneous and every dependency (with a
# compiler at hand for any that has no wheel for this platform, e.g.
# meshoptimizer of the fast-mesh extra); the second installs only those
# wheels, so the image carries no compiler.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY igneous ./igneous
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fast-mesh]"

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 igneous \
 && useradd --uid 1000 --gid 1000 --create-home igneous
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "igneous[fast-mesh]" \
 && rm -rf /wheels
# numeric, so Kubernetes' runAsNonRoot can check it
USER 1000:1000
WORKDIR /home/igneous
# igneous handles SIGTERM itself (finish the current task, give the rest back)
ENTRYPOINT ["igneous"]
CMD ["--help"]
