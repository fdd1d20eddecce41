# shellcheck shell=bash
# tools/lib/leftovers.sh — remove what earlier test runs left behind, so that one failed run
# cannot make later runs fail. Sourced by tools/run-tests.sh (before every run and at exit) and
# meant for tools/e2e-gridengine.sh too.
#
#   sweep_leftovers              all three below
#   sweep_test_cgroups [GLOB...] cgroups /sys/fs/cgroup/*/bdocker-test-*, /sys/fs/cgroup/*/bdocker-e2e*
#                                and /sys/fs/cgroup/*/bdocker-soak-* (a killed soak's)
#                                (or only the given name globs, which must start with one of those):
#                                their tasks, and their children's, go back to the hierarchy's root,
#                                then the directories are removed deepest first
#   sweep_test_containers        containers labelled bdocker.job or bdocker.test on the TEST engine
#                                ($BDOCKER_TEST_DOCKER_URL, else /run/bdocker-test/env); never the
#                                system engine
#   sweep_bind_staging           bind-mount staging /run/bdocker-test*/binds, /run/bdocker-e2e*/binds and
#                                /tmp/bdocker-soak-*/binds:
#                                mounts below it are lazily unmounted, then its empty directories
#                                removed (rmdir only: nothing is ever deleted recursively)
#
# Each one says on stderr what it removed and what it could not, never stops the caller (also
# under set -e), and returns 1 only when something is left. Nothing else is touched: only
# directories with those names, only containers with those labels.
#
# For tools/test-run-tests-exit.sh, which must not touch the machine's real cgroups and mounts:
# LEFTOVERS_CGROUP_ROOT (default /sys/fs/cgroup) and LEFTOVERS_BINDS_GLOB (space-separated
# globs, default above) point the sweep at a scratch tree.

leftovers_log() { echo "leftovers: $*" >&2; }

# Names the sweep may touch at a hierarchy's root.
leftovers_is_test_cgroup_name() { [[ $1 == bdocker-test-* || $1 == bdocker-e2e* || $1 == bdocker-soak-* ]] && [[ $1 != */* ]]; }

sweep_leftovers() {
    local rc=0
    sweep_test_cgroups || rc=1
    sweep_test_containers || rc=1
    sweep_bind_staging || rc=1
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
sweep_test_cgroups() { # [NAME_GLOB...]
    local root=${LEFTOVERS_CGROUP_ROOT:-/sys/fs/cgroup} globs=("$@") glob hierarchy top rc=0
    ((${#globs[@]})) || globs=('bdocker-test-*' 'bdocker-e2e*' 'bdocker-soak-*')
    for glob in "${globs[@]}"; do
        leftovers_is_test_cgroup_name "$glob" || { leftovers_log "refusing cgroup name pattern '$glob'"; return 1; }
    done
    for hierarchy in "$root"/*/; do
        hierarchy=${hierarchy%/}
        [[ -d $hierarchy && ! -L $hierarchy ]] || continue
        for glob in "${globs[@]}"; do
            for top in "$hierarchy"/$glob; do
                [[ -d $top && ! -L $top ]] || continue
                leftovers_is_test_cgroup_name "${top##*/}" || continue
                leftovers_remove_cgroup_tree "$hierarchy" "$top" || rc=1
            done
        done
    done
    return "$rc"
}

leftovers_remove_cgroup_tree() { # HIERARCHY_ROOT DIR
    local hierarchy=$1 top=$2 dir pid moved=0 stuck=0 err attempt dirs=()
    # v1 moves threads through `tasks`; v2 moves processes through `cgroup.procs`.
    local from=tasks
    [[ -e $hierarchy/tasks ]] || from=cgroup.procs
    mapfile -d '' -t dirs < <(find "$top" -depth -type d -print0 2>/dev/null)   # deepest first
    for dir in "${dirs[@]}"; do
        [[ -r $dir/$from ]] || continue
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            if echo "$pid" >>"$hierarchy/$from" 2>/dev/null; then moved=$((moved + 1)); else stuck=$((stuck + 1)); fi
        done <"$dir/$from"
    done
    ((moved == 0)) || leftovers_log "moved $moved task(s) out of $top to $hierarchy"
    for dir in "${dirs[@]}"; do
        # A cgroup whose last task just left can be busy for a moment.
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            err=$(rmdir "$dir" 2>&1) && break
            [[ $err == *busy* ]] || break
            sleep 0.1
        done
    done
    if [[ -d $top ]]; then
        local why=${err:-still there}
        ((stuck == 0)) || why="$stuck task(s) would not move; $why"
        leftovers_log "could not remove $top: $why"
        return 1
    fi
    leftovers_log "removed cgroup $top"
}

# ---------------------------------------------------------------------------------------------
sweep_test_containers() {
    local url=${BDOCKER_TEST_DOCKER_URL:-} docker=docker label ids=() listed err
    if [[ -z $url && -r /run/bdocker-test/env ]]; then
        url=$(sed -n 's/^export BDOCKER_TEST_DOCKER_URL=//p' /run/bdocker-test/env | tail -n 1 | tr -d "\"'")
    fi
    if [[ -z $url ]]; then
        leftovers_log "no test engine known (BDOCKER_TEST_DOCKER_URL unset, no /run/bdocker-test/env): containers not swept"
        return 0
    fi
    if [[ $url == unix://* ]]; then
        local sock=${url#unix://} real
        real=$(readlink -f "$sock" 2>/dev/null || echo "$sock")
        if [[ $real == /var/run/docker.sock || $real == /run/docker.sock ]]; then
            leftovers_log "refusing to sweep $url: that is the system engine, not the test engine"
            return 1
        fi
        [[ -S $sock ]] || { leftovers_log "no test engine at $url: containers not swept"; return 0; }
    fi
    [[ -x /usr/bin/docker ]] && docker=/usr/bin/docker
    for label in bdocker.job bdocker.test; do
        if ! listed=$(timeout 60 "$docker" -H "$url" ps -aq --no-trunc --filter "label=$label" 2>&1); then
            leftovers_log "cannot list containers on $url: $listed"
            return 1
        fi
        [[ -z $listed ]] || ids+=($listed)
    done
    ((${#ids[@]})) || return 0
    mapfile -t ids < <(printf '%s\n' "${ids[@]}" | sort -u)
    leftovers_log "removing ${#ids[@]} stale test container(s) on $url: ${ids[*]:0:5}$( ((${#ids[@]} > 5)) && echo ' …')"
    if ! err=$(timeout 120 "$docker" -H "$url" rm -f "${ids[@]}" 2>&1 >/dev/null); then
        leftovers_log "could not remove all of them: $err"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Mount points at or below DIR in this mount namespace, deepest first.
leftovers_mounts_under() { # DIR
    local mp
    while read -r mp; do
        mp=$(printf '%b' "$mp")   # mountinfo escapes space, tab, newline and \ as octal
        [[ $mp == "$1"/* ]] && echo "$mp"
    done < <(awk '{print $5}' /proc/self/mountinfo) | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

sweep_bind_staging() {
    local patterns pattern base mp rc=0 mounts dirs=() dir
    read -ra patterns <<<"${LEFTOVERS_BINDS_GLOB:-/run/bdocker-test*/binds /run/bdocker-e2e*/binds /tmp/bdocker-soak-*/binds}"
    for pattern in "${patterns[@]}"; do
        # shellcheck disable=SC2206  # the glob is meant to expand
        local bases=($pattern)
        for base in "${bases[@]}"; do
            [[ -d $base && ! -L $base && ${base##*/} == binds ]] || continue
            mounts=$(leftovers_mounts_under "$base")
            if [[ -n $mounts ]]; then
                while IFS= read -r mp; do
                    umount -l "$mp" 2>/dev/null && leftovers_log "unmounted $mp" || leftovers_log "could not unmount $mp"
                done <<<"$mounts"
                # Never rmdir below a mount that is still there: it would reach into the mounted tree.
                if [[ -n $(leftovers_mounts_under "$base") ]]; then
                    leftovers_log "mounts left under $base; its directories are kept"
                    rc=1
                    continue
                fi
            fi
            mapfile -d '' -t dirs < <(find "$base" -mindepth 1 -depth -type d -print0 2>/dev/null)
            for dir in "${dirs[@]}"; do rmdir "$dir" 2>/dev/null || true; done
            if [[ -n $(find "$base" -mindepth 1 -print -quit 2>/dev/null) ]]; then
                leftovers_log "could not empty $base (files left in it)"
                rc=1
            elif ((${#dirs[@]})); then
                leftovers_log "removed stale bind staging under $base"
            fi
        done
    done
    return "$rc"
}
