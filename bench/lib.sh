# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the scripts that source it
# Shell helpers shared by the bench/ scripts. Sourced, not run:
#
#   BENCH_NAME=bench/NAME      # prefixes error messages and names the apt log
#   source "$ROOT/bench/lib.sh"
#
# The script sets ROOT (the workspace) before sourcing, and WORK (its temp dir)
# before calling `timed`.
# Tunables (environment): BENCH_QUIET_MAX, BENCH_QUIET_WAIT (see wait_quiet).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

section() { printf '\n==> %s\n' "$*"; }
log() { printf '    %s\n' "$*"; }
die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }

# Runs "$@" on the cores in $1 (all cores when empty).
on_cpus() {
    local cpus=$1
    shift
    if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# PostgreSQL's tools refuse to run as root: run them as `postgres` then.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# install_missing PACKAGE...: installs Debian packages (root only; otherwise fails
# with the apt-get line to run). Package scripts may not start system-wide servers.
install_missing() {
    (($#)) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing: $* (apt-get install -y $*)"
    log "installing $*"
    local own_policy=0 rc=0 apt_log="/tmp/${BENCH_NAME//\//-}-apt.log"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not start a system-wide PostgreSQL (see scripts/test).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; } \
        >"$apt_log" 2>&1 || rc=$?
    ((own_policy)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || { tail -n 30 "$apt_log" >&2; die "apt-get failed"; }
}

# A loopback port nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 200); do
        # Below the kernel's ephemeral range (32768-60999 here), which outgoing
        # connections of other processes may take at any moment.
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# wait_http URL PID [TRIES]: waits (0.1 s steps) until URL answers 2xx; fails when
# the process PID exits first or it never answers.
wait_http() {
    local url=$1 pid=$2 tries=${3:-100}
    for _ in $(seq 1 "$tries"); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    curl -fsS -o /dev/null "$url" 2>/dev/null
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it if it is our child.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# What was measured: sets GIT_COMMIT and GIT_DIRTY (whether files outside bench/
# differed from that commit).
git_source() {
    GIT_COMMIT=unknown GIT_DIRTY=null
    # shellcheck disable=SC2153 # ROOT is set by the sourcing script
    if git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
        GIT_COMMIT=$(git -C "$ROOT" rev-parse HEAD)
        if [[ -n $(git -C "$ROOT" status --porcelain -- . ':!bench') ]]; then GIT_DIRTY=true; else GIT_DIRTY=false; fi
    fi
}

# ---- CPU accounting, so that load from outside a benchmark shows in its results.
HZ=$(getconf CLK_TCK)
NPROC=$(nproc)
QUIET_MAX=${BENCH_QUIET_MAX:-0.10}   # machine busy fraction that counts as quiet
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}

# Clock ticks of the whole machine: "busy total" (busy = user, nice, system, irq,
# softirq), then "irq+softirq" alone.
machine_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8; t=0; for(i=2;i<=NF;i++) t+=$i; print b, t, $7+$8}' /proc/stat; }
# Kernel threads (jbd2 and kworkers doing the fsync work, ksoftirqd, ...).
# One ps and one awk (a snapshot taken inside a measurement should cost little).
kthread_ticks() {
    local files
    files=$(ps -o pid= --ppid 2 | awk '{printf "/proc/%s/stat ", $1}')
    # shellcheck disable=SC2086 # one path per kernel thread
    cat $files 2>/dev/null | awk '{t += $14 + $15} END {print t + 0}'
}
# User + system ticks of one process (0 when it is gone).
proc_ticks() { local v; v=$(awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null); echo "${v:-0}"; }
# This shell and the children it has reaped (cutime, cstime): what a script spent on
# its own, its load generator included once that has exited.
self_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$$/stat"; }
# A process, its reaped children (cutime, cstime) and its live children.
tree_ticks() {
    local root=$1 t child
    t=$(awk '{print $14+$15+$16+$17}' "/proc/$root/stat" 2>/dev/null)
    t=${t:-0}
    for child in $(ps -o pid= --ppid "$root"); do t=$((t + $(proc_ticks "$child"))); done
    echo "$t"
}

# Waits (up to $QUIET_WAIT s) until the machine is quiet apart from our own servers
# idling; returns 1 if it never was.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) b0 t0 b1 t1 busy
    while :; do
        read -r b0 t0 _ < <(machine_ticks)
        sleep 2
        read -r b1 t1 _ < <(machine_ticks)
        busy=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN{printf "%.3f", t ? b/t : 0}')
        awk -v x="$busy" -v m="$QUIET_MAX" 'BEGIN{exit !(x <= m)}' && return 0
        if ((SECONDS >= deadline)); then
            log "machine still busy ($busy of $NPROC cores) after ${QUIET_WAIT} s; going on"
            return 1
        fi
        log "machine busy ($busy) with other work; waiting for it to quieten"
        sleep 8
    done
}

# timed OUT_LOG CMD...: runs CMD with its output in OUT_LOG; sets CLIENT_S to the
# CPU seconds (user + system) it used.
timed() {
    local out=$1 rc=0 TIMEFORMAT='%3U %3S'
    shift
    { time "$@" >"$out" 2>&1; } 2>"$WORK/time.txt" || rc=$?
    CLIENT_S=$(awk '{printf "%.2f", $1 + $2}' "$WORK/time.txt")
    return "$rc"
}
