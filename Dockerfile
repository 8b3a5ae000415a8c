# graphnap: a virtual environment on a slim Python, run as a numeric non-root user.
#
#   docker build -t graphnap .                      # fetches dependencies from PyPI
#   docker build --build-arg BASE_IMAGE=local/base --build-arg OFFLINE=1 --network none .
#
# OFFLINE=1 installs only from deploy/wheels (filled by `pip wheel`, see .ci/deploy-check):
# that is how CI builds it with no registry in reach. BASE_IMAGE must have python3 with venv.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG OFFLINE=0
COPY deploy/wheels/ /wheels/
COPY pyproject.toml /src/
# Dependencies first, in their own layer: a change to the code alone reuses it.
RUN python3 -m venv /opt/graphnap \
 && if [ "$OFFLINE" = 1 ]; then set -- --no-index --find-links /wheels; fi \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/graphnap/bin/pip install --no-cache-dir --disable-pip-version-check "$@" -r /tmp/requirements.txt
COPY README.md /src/
COPY daemon/ /src/daemon/
# Fail the build, not the first firing, when the base has no time-zone data for schedules.
RUN if [ "$OFFLINE" = 1 ]; then set -- --no-index --find-links /wheels; fi \
 && /opt/graphnap/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps "$@" /src \
 && /opt/graphnap/bin/python -c "import zoneinfo; zoneinfo.ZoneInfo('Asia/Shanghai')" \
 && /opt/graphnap/bin/graphnap --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="graphnap" \
      org.opencontainers.image.description="Stops idle Huawei Cloud GES graphs on schedules; exports what it saved." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/graphnap /opt/graphnap
# The root filesystem may be read-only: bytecode was compiled at install time, logs go to
# stderr, and the only writable paths are the mounted /tmp and the state directory.
ENV PATH=/opt/graphnap/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRAPHNAP_CONFIG=/etc/graphnap/config.yaml \
    GRAPHNAP_LOG_FORMAT=json
# Numeric, so that Kubernetes' runAsNonRoot can verify it without a passwd entry.
USER 10001:10001
EXPOSE 9464
# No init process: graphnap handles SIGTERM/SIGINT itself as PID 1 (drains, exits 0) and
# starts no child processes that would need reaping.
ENTRYPOINT ["graphnap"]
CMD ["run"]
