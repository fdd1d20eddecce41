#!/usr/bin/env bash
# tools/test-env.sh — prepare the bdocker integration-test environment (Debian 12, run as root).
#
#   tools/test-env.sh up       install packages, start a private dockerd + registry, push the
#                              busybox test images, create test users, write /run/bdocker-test/env
#   tools/test-env.sh down     stop only what `up` started (data dirs are kept for a fast next `up`)
#   tools/test-env.sh status   show what runs (exit 0 = everything up, 3 = something missing)
#
# Tests then do:  . /run/bdocker-test/env
#
# Everything lives under its own paths (socket, data-root, exec-root, port 5055), so it never
# touches /var/run/docker.sock or a system dockerd. No network is needed except Debian apt.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # dockerd, useradd live in sbin

RUN_DIR=/run/bdocker-test
LIB_DIR=/var/lib/bdocker-test
LOG_DIR=/var/log/bdocker-test

SOCK=$RUN_DIR/docker.sock
DOCKER_URL=unix://$SOCK
DOCKERD_PIDFILE=$RUN_DIR/dockerd.pid
DOCKERD_LOG=$LOG_DIR/dockerd.log

REGISTRY_ADDR=127.0.0.1:5055
REGISTRY_BIN=/usr/bin/docker-registry
REGISTRY_DIR=$LIB_DIR/registry
REGISTRY_CONF=$REGISTRY_DIR/config.yml
REGISTRY_PIDFILE=$RUN_DIR/registry.pid
REGISTRY_LOG=$LOG_DIR/registry.log

IMAGE_REPO=$REGISTRY_ADDR/busybox
IMAGE_TAGS=(latest 1.35)
# The pull test's own image (BDOCKER_TEST_PULL_IMAGE): it removes it to pull it afresh, so no
# other test may run it. The same rootfs plus a marker file, so it shares no layer with the
# others and its pull really downloads.
PULL_TAG=pulltest
# The run-pulls-a-missing-image test's own image (BDOCKER_TEST_RUN_PULL_IMAGE), likewise.
RUN_PULL_TAG=runpull
# Bump when the image recipe below changes: a registry holding an older build gets re-pushed.
IMAGE_RECIPE=4
IMAGE_STAMP=$REGISTRY_DIR/busybox-image.recipe
TEST_USERS=(bdtest1 bdtest2)
# chromium and fonts-dejavu-core: the usage report loaded and shot headless (ReportBrowserTests).
# openssl: the TLS tests make their CA and certificates with it (TestPKI).
PACKAGES=(libsqlite3-dev docker.io docker-registry busybox-static curl python3 gridengine-client chromium fonts-dejavu-core openssl)

ENV_FILE=$RUN_DIR/env
STARTED_FILE=$RUN_DIR/started   # lines "<service> <pid>" for services this script started

DOCKERD_TIMEOUT=60
REGISTRY_TIMEOUT=30
STOP_TIMEOUT=20

log() { echo "test-env: $*" >&2; }
die() { echo "test-env: ERROR: $*" >&2; exit 1; }
USAGE_LINES=12
process_name() { [[ $1 == registry ]] && echo docker-registry || echo "$1"; }
# shellcheck source=tools/lib/services.sh
. "$(dirname "$0")/lib/services.sh"
. "$(dirname "$0")/lib/template.sh"

# Prefer the client shipped with docker.io (same version as the engine); fall back to PATH.
docker_cli() {
    local bin=docker
    [[ -x /usr/bin/docker ]] && bin=/usr/bin/docker
    "$bin" -H "$DOCKER_URL" "$@"
}

# Log lines since our last "=== ... test-env.sh up" marker (i.e. this start attempt only).
log_tail() { tac "$1" 2>/dev/null | sed '/^=== /q' | tac | tail -n 40 >&2 || true; }

# ---------------------------------------------------------------------------------------------
ensure_packages() {
    local missing
    read -ra missing <<<"$(missing_packages "${PACKAGES[@]}")"
    if ((${#missing[@]} == 0)); then
        log "packages present: ${PACKAGES[*]}"
        return 0
    fi
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # gridengine-client (qacct, to check exported accounting) asks debconf questions; unanswered,
    # it writes an empty act_qmaster and every qacct, even `qacct -f FILE`, refuses to run.
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $(hostname)
EOF
    # Without systemd, the postinst scripts would start a *system* dockerd/registry through their
    # init scripts. We don't want those, so forbid service starts during the install (unless the
    # machine already has its own policy-rc.d, which we leave alone).
    local policy=/usr/sbin/policy-rc.d added_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
    if [[ -n $added_policy ]]; then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get failed (exit $rc)"
}

# ---------------------------------------------------------------------------------------------
dockerd_answers() { docker_cli version >/dev/null 2>&1; }

launch_dockerd() { # prints the new dockerd's pid
    mkdir -p "$LIB_DIR/docker" "$RUN_DIR/docker-exec" "$LOG_DIR"
    local args=(--iptables=false --ip6tables=false --bridge=none --storage-driver=vfs
        --data-root "$LIB_DIR/docker" --exec-root "$RUN_DIR/docker-exec"
        -H "$DOCKER_URL" --pidfile "$DOCKERD_PIDFILE")
    # If a system containerd exists, dockerd attaches to it instead of starting its own;
    # then use separate namespaces so we cannot clash with a system dockerd's containers.
    if [[ -S /run/containerd/containerd.sock ]]; then
        args+=(--containerd-namespace bdocker-test --containerd-plugins-namespace bdocker-test-plugins)
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    echo "=== $(date -Is) test-env.sh up: dockerd ${args[*]}" >>"$DOCKERD_LOG"
    # setsid+nohup: detach from our session; 9>&- : don't inherit our lock fd.
    setsid nohup dockerd "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    local launched=$! i
    for ((i = 0; i < DOCKERD_TIMEOUT * 2; i++)); do
        dockerd_answers && break
        if ! alive_as dockerd "$launched"; then
            log_tail "$DOCKERD_LOG"
            die "dockerd exited during startup (see $DOCKERD_LOG)"
        fi
        sleep 0.5
    done
    if ! dockerd_answers; then
        log_tail "$DOCKERD_LOG"
        kill -TERM "$launched" 2>/dev/null || true
        die "dockerd did not answer on $SOCK within ${DOCKERD_TIMEOUT}s (see $DOCKERD_LOG)"
    fi
    echo "$launched"   # setsid/nohup exec in place, so this is dockerd itself
}

start_dockerd() {
    local pid i
    pid=$(read_pid "$DOCKERD_PIDFILE" || true)
    if [[ -n $pid ]] && alive_as dockerd "$pid"; then
        log "reusing running dockerd (pid $pid)"
    elif pid=$(started_pid dockerd); then
        log "pidfile lost, but dockerd pid $pid from $STARTED_FILE is alive; reusing it"
        echo "$pid" >"$DOCKERD_PIDFILE"
    else
        if [[ -e $DOCKERD_PIDFILE ]]; then log "removing stale $DOCKERD_PIDFILE"; rm -f "$DOCKERD_PIDFILE"; fi
        if dockerd_answers; then
            # Someone else answers on our socket: use it, but never stop it.
            log "WARNING: $SOCK answers but no live dockerd pidfile; using it as is (down will not stop it)"
            return 0
        fi
        pid=$(launch_dockerd)
        record_started dockerd "$pid"
        log "dockerd up (pid $pid)"
        return 0
    fi
    # A reused engine may still be starting (e.g. a parallel run): wait for it too.
    for ((i = 0; i < DOCKERD_TIMEOUT * 2; i++)); do dockerd_answers && return 0; sleep 0.5; done
    log_tail "$DOCKERD_LOG"
    die "dockerd (pid $pid) does not answer on $SOCK"
}

# ---------------------------------------------------------------------------------------------
registry_answers() { curl -sf -o /dev/null --max-time 5 "http://$REGISTRY_ADDR/v2/"; }

write_registry_config() {
    mkdir -p "$REGISTRY_DIR/data"
    render_template "$(dirname "$0")/templates/registry.yml" "$REGISTRY_CONF.tmp" REGISTRY_DIR="$REGISTRY_DIR" REGISTRY_ADDR="$REGISTRY_ADDR"
    mv -f "$REGISTRY_CONF.tmp" "$REGISTRY_CONF"
}

start_registry() {
    local pid i
    pid=$(read_pid "$REGISTRY_PIDFILE" || true)
    if [[ -n $pid ]] && alive_as docker-registry "$pid"; then
        log "reusing running registry (pid $pid)"
    elif pid=$(started_pid registry); then
        log "pidfile lost, but registry pid $pid from $STARTED_FILE is alive; reusing it"
        echo "$pid" >"$REGISTRY_PIDFILE"
    else
        if [[ -e $REGISTRY_PIDFILE ]]; then log "removing stale $REGISTRY_PIDFILE"; rm -f "$REGISTRY_PIDFILE"; fi
        if registry_answers; then
            log "WARNING: $REGISTRY_ADDR answers but no live registry pidfile; using it as is (down will not stop it)"
            return 0
        fi
        [[ -x $REGISTRY_BIN ]] || die "$REGISTRY_BIN missing (package docker-registry)"
        write_registry_config
        mkdir -p "$LOG_DIR"
        log "starting registry on $REGISTRY_ADDR (log: $REGISTRY_LOG)"
        echo "=== $(date -Is) test-env.sh up: $REGISTRY_BIN serve $REGISTRY_CONF" >>"$REGISTRY_LOG"
        setsid nohup "$REGISTRY_BIN" serve "$REGISTRY_CONF" >>"$REGISTRY_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$REGISTRY_PIDFILE"
        record_started registry "$pid"
    fi
    for ((i = 0; i < REGISTRY_TIMEOUT * 4; i++)); do
        registry_answers && { log "registry up (pid $pid)"; return 0; }
        alive_as docker-registry "$pid" || break
        sleep 0.25
    done
    log_tail "$REGISTRY_LOG"
    die "registry (pid $pid) did not answer on http://$REGISTRY_ADDR/v2/ (see $REGISTRY_LOG)"
}

# ---------------------------------------------------------------------------------------------
registry_has_tag() { # TAG
    curl -sf -o /dev/null --max-time 10 -I \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY_ADDR/v2/busybox/manifests/$1"
}

ensure_image() {
    local tag stale=0 all_tags=("${IMAGE_TAGS[@]}" "$PULL_TAG" "$RUN_PULL_TAG")
    for tag in "${all_tags[@]}"; do registry_has_tag "$tag" || stale=1; done
    [[ $(cat "$IMAGE_STAMP" 2>/dev/null || true) == "$IMAGE_RECIPE" ]] || stale=1
    if ((stale == 0)); then
        log "registry already has $IMAGE_REPO tags: ${all_tags[*]}; skipping image build"
        return 0
    fi

    # busybox-static's /bin/busybox needs no libraries, so a rootfs with only it works.
    # (ldd exits 1 for static binaries, hence the || true.)
    [[ $(LANG=C ldd /bin/busybox 2>&1 || true) == *"not a dynamic executable"* ]] ||
        die "/bin/busybox is not static (install busybox-static, not busybox)"

    log "building $IMAGE_REPO from /bin/busybox (busybox-static $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null))"
    local rootfs
    rootfs=$(mktemp -d "$LIB_DIR/rootfs.XXXXXX")
    chmod 0755 "$rootfs"   # mktemp makes it 0700, which would lock non-root users out of /
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" EXIT

    install -D -m 0755 /bin/busybox "$rootfs/bin/busybox"
    local applet
    while IFS= read -r applet; do   # e.g. bin/sh, usr/bin/id, sbin/ifconfig
        [[ $applet == bin/busybox || $applet == linuxrc || -z $applet ]] && continue
        mkdir -p "$rootfs/$(dirname "$applet")"
        ln -sfn /bin/busybox "$rootfs/$applet"
    done < <(/bin/busybox --list-full)
    mkdir -p "$rootfs"/{etc,tmp,proc,sys,dev,home,root,var/tmp}
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 0700 "$rootfs/root"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' \
        >"$rootfs/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nobody:x:65534:' >"$rootfs/etc/group"
    chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"

    # Fixed order/owner/mtime => the layer digest is the same on every machine.
    import_rootfs() { # TAG
        tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -c . |
            docker_cli import --change 'CMD ["sh"]' \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                - "$IMAGE_REPO:$1" >/dev/null
    }
    import_rootfs "${IMAGE_TAGS[0]}"
    for tag in "${IMAGE_TAGS[@]:1}"; do
        docker_cli tag "$IMAGE_REPO:${IMAGE_TAGS[0]}" "$IMAGE_REPO:$tag"
    done
    echo "bdocker pull test image" >"$rootfs/etc/bdocker-pull-test"
    chmod 0644 "$rootfs/etc/bdocker-pull-test"
    import_rootfs "$PULL_TAG"
    echo "bdocker run-pull test image" >"$rootfs/etc/bdocker-run-pull-test"
    chmod 0644 "$rootfs/etc/bdocker-run-pull-test"
    import_rootfs "$RUN_PULL_TAG"
    for tag in "${all_tags[@]}"; do
        log "pushing $IMAGE_REPO:$tag"
        docker_cli push "$IMAGE_REPO:$tag" >&2
        registry_has_tag "$tag" || die "push of $IMAGE_REPO:$tag did not reach the registry"
    done
    # Tests must really pull from the registry, so drop the local copies.
    for tag in "${all_tags[@]}"; do docker_cli rmi "$IMAGE_REPO:$tag" >/dev/null; done
    # An older build pulled before this one is now untagged but still holds the same layers, and
    # a pull would then find them instead of downloading: drop such leftovers of the test engine.
    docker_cli image prune -f >/dev/null
    echo "$IMAGE_RECIPE" >"$IMAGE_STAMP"
    rm -rf "$rootfs"
    trap - EXIT
}

# ---------------------------------------------------------------------------------------------
ensure_users() {
    local u uid
    for u in "${TEST_USERS[@]}"; do
        if ! id -u "$u" >/dev/null 2>&1; then
            log "creating user $u"
            useradd -m -s /bin/bash "$u"
        fi
        uid=$(id -u "$u")
        ((uid >= 1000)) || die "user $u exists with uid $uid < 1000"
        log "user $u: uid=$uid gid=$(id -g "$u") home=$(getent passwd "$u" | cut -d: -f6)"
    done
}

write_env() {
    local uids=() u
    for u in "${TEST_USERS[@]}"; do uids+=("$(id -u "$u")"); done
    cat >"$ENV_FILE.tmp" <<EOF
export BDOCKER_TEST_DOCKER_URL=$DOCKER_URL
export BDOCKER_TEST_REGISTRY=$REGISTRY_ADDR
export BDOCKER_TEST_IMAGE=$IMAGE_REPO:latest
export BDOCKER_TEST_PULL_IMAGE=$IMAGE_REPO:$PULL_TAG
export BDOCKER_TEST_RUN_PULL_IMAGE=$IMAGE_REPO:$RUN_PULL_TAG
export BDOCKER_TEST_USERS="${TEST_USERS[*]}"
export BDOCKER_TEST_USER_UIDS="${uids[*]}"
EOF
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
cmd_up() {
    local t0=$SECONDS
    ensure_packages
    start_dockerd
    start_registry
    ensure_image
    ensure_users
    write_env
    touch "$STARTED_FILE"
    log "up: ready in $((SECONDS - t0))s — use: . $ENV_FILE"
}

cmd_down() {
    if [[ ! -s $STARTED_FILE ]]; then
        log "down: nothing was started by test-env.sh up; nothing to stop"
    else
        local pid
        # dockerd first (it owns the containers), then the registry.
        pid=$(awk '$1 == "dockerd" {print $2}' "$STARTED_FILE")
        if [[ -n $pid ]]; then
            if alive_as dockerd "$pid" && dockerd_answers; then
                local ids
                ids=$(docker_cli ps -aq)
                if [[ -n $ids ]]; then
                    log "removing leftover containers: ${ids//$'\n'/ }"
                    # shellcheck disable=SC2086
                    docker_cli rm -f $ids >/dev/null || log "WARNING: could not remove all containers"
                fi
            fi
            stop_pid dockerd "$pid"
            # dockerd removes its pidfile on clean exit; not after SIGKILL.
            if [[ $(read_pid "$DOCKERD_PIDFILE" || true) == "$pid" ]]; then rm -f "$DOCKERD_PIDFILE"; fi
            # dockerd leaves its host-netns bind mount behind on shutdown; it is ours, so tidy it.
            local ns=$RUN_DIR/docker-exec/netns/default
            if ! alive_as dockerd "$pid" && mountpoint -q "$ns" 2>/dev/null; then
                umount "$ns" || log "WARNING: could not unmount $ns"
            fi
        fi
        pid=$(awk '$1 == "registry" {print $2}' "$STARTED_FILE")
        if [[ -n $pid ]]; then
            stop_pid docker-registry "$pid"
            if [[ $(read_pid "$REGISTRY_PIDFILE" || true) == "$pid" ]]; then rm -f "$REGISTRY_PIDFILE"; fi
        fi
    fi
    rm -f "$STARTED_FILE" "$ENV_FILE"
    log "down: done (data kept in $LIB_DIR, logs in $LOG_DIR)"
}

cmd_status() {
    local ok=1 pid u
    pid=$(read_pid "$DOCKERD_PIDFILE" || true)
    if dockerd_answers; then
        echo "dockerd:  running (pid ${pid:-?}), $DOCKER_URL, engine $(docker_cli version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null)"
        echo "          containers: $(docker_cli ps -aq | wc -l), images: $(docker_cli images -q | wc -l)"
    else
        echo "dockerd:  not running${pid:+ (stale pidfile: $pid)}"
        ok=0
    fi
    pid=$(read_pid "$REGISTRY_PIDFILE" || true)
    if registry_answers; then
        echo "registry: running (pid ${pid:-?}), http://$REGISTRY_ADDR, busybox tags: $(curl -sf "http://$REGISTRY_ADDR/v2/busybox/tags/list" || echo none)"
    else
        echo "registry: not running${pid:+ (stale pidfile: $pid)}"
        ok=0
    fi
    for u in "${TEST_USERS[@]}"; do
        if id "$u" >/dev/null 2>&1; then echo "user:     $(id "$u")"; else echo "user:     $u missing"; ok=0; fi
    done
    if [[ -f $STARTED_FILE ]]; then echo "started by up: $(tr '\n' ' ' <"$STARTED_FILE")"; fi
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; sed 's/^/          /' "$ENV_FILE"; else echo "env file: missing"; ok=0; fi
    ((ok)) && return 0 || return 3
}

services_main "$@"
