#!/usr/bin/env bash
# A Docker engine and the executor image, for the tests that need real Docker. Idempotent: each
# part is done only when missing. No registry is reachable, so the base image is made from Debian
# packages with debootstrap and imported; the executor image is built FROM it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="iter-executor-base:latest"
IMAGE="${ITER_EXECUTOR_IMAGE:-iter-executor:latest}"
# python-is-python3 and python3-pytest: plans verify with `python -m pytest`, which must work in the container.
BASE_PACKAGES="python3,python-is-python3,python3-pytest,git"

log() { echo "docker.sh: $*"; }

need() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # docker-compose: tests/test_worker_deployment.py checks docker-compose.yml with `docker-compose config`.
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

daemon() {
  if docker info >/dev/null 2>&1; then
    return
  fi
  log "starting dockerd (no bridge: containers get network none only)"
  mkdir -p /var/log
  # setsid: the daemon outlives this script and is not in its process group.
  setsid dockerd --bridge=none --iptables=false >/var/log/iter-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not answer in 60 s; see /var/log/iter-dockerd.log"
  exit 1
}

base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    return
  fi
  local dir
  dir="$(mktemp -d /tmp/iter-base.XXXXXX)"
  log "building $BASE_IMAGE with debootstrap (about a minute)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$dir" >/tmp/iter-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/iter-debootstrap.log"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
}

executor_image() {
  if [ -x "$ROOT/.venv/bin/iter" ]; then
    (cd "$ROOT" && .venv/bin/iter executor build)
  else
    docker build -q -t "$IMAGE" -f "$ROOT/executor/Dockerfile" "$ROOT/executor" >/dev/null
  fi
}

need
daemon
base_image
executor_image
log "ready: $(docker version --format '{{.Server.Version}}'), image $IMAGE"
