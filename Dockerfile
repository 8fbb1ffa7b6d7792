# syntax=docker/dockerfile:1
# The image of any of the six Python apps (the five services and the web client): one recipe,
# told which workspace member to build by three build args, all required:
#   MEMBER   the member's folder: services/auth | services/tickets | services/orders |
#            services/payments | services/expiration | client
#   PACKAGE  its uv package, as its pyproject names it: ticketing-auth, ..., ticketing-client
#   APP      the uvicorn app factory the container serves: ticketing_auth.main:create_app, ...
# skaffold.yaml and docker-compose.test.yml pass them (tools/deploy checks that they name a real
# member, package and factory, and that both files agree). The expiration image also runs its
# RQ worker: the manifests and compose replace the command with
# `python -m ticketing_expiration.worker` (there is no ENTRYPOINT, so that replaces it all).
#
# Built from the repository root so that `common` and the lock are in the context. The build
# stage installs exactly what uv.lock pins for this member, without dev dependencies; the final
# stage holds only that virtualenv and the sources it runs (no uv, no build tools, no tests), as
# a non-root user.
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /app
COPY . .
# Declared after the shared layers above, so the six images reuse them from the build cache.
ARG MEMBER
ARG PACKAGE
ARG APP
# A forgotten arg fails the build here, by name: without APP the image would build and then
# only fail when a container starts.
RUN --mount=type=cache,target=/root/.cache/uv \
    : "${MEMBER:?build arg required}" "${PACKAGE:?build arg required}" \
    "${APP:?build arg required}" \
    && uv sync --frozen --package "$PACKAGE" --no-dev \
    && python -m compileall -q common/src "$MEMBER/src"

FROM python:3.11-slim-bookworm
ARG MEMBER
ARG APP
# The factory is kept in the image's environment for the CMD, which reads it when it starts.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 APP=$APP
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# The sources belong to the app user only so that `skaffold dev` can sync edits into a running
# container (its dev overlay lifts the read-only root filesystem); the virtualenv stays root's.
COPY --from=build --chown=10001:10001 /app/common/src common/src
COPY --from=build --chown=10001:10001 /app/$MEMBER/src $MEMBER/src
USER 10001:10001
EXPOSE 8000
# A shell only to expand $APP; `exec` hands PID 1 to uvicorn, so it gets SIGTERM and drains.
CMD ["sh", "-c", "exec uvicorn --factory \"$APP\" --host 0.0.0.0 --port 8000 --no-access-log"]
