#!/usr/bin/env bash
# A real single-host Slurm cluster for the test suite (tests/e2e/test_slurm.py submits the three
# slurm/*.sbatch templates to it). Debian's slurm-wlm and munge; slurmctld + slurmd on this host,
# 2 CPUs, as root; no cgroups (proctrack/linuxproc, task/none), no accounting database.
#
#   bash scripts/slurm_cluster.sh install   # apt-get install slurm-wlm munge when missing (root + apt-get)
#   bash scripts/slurm_cluster.sh start     # write the config, start munged/slurmctld/slurmd, wait until idle
#   bash scripts/slurm_cluster.sh stop      # stop the daemons this script started (by their pid files)
#   bash scripts/slurm_cluster.sh status    # sinfo of the cluster
#
# Everything lives in $EGOINDEX_SLURM_DIR (default /tmp/egoindex-slurm): slurm.conf, spool, state,
# logs, pid files. Nothing under /etc is written, so a machine's own Slurm is left alone; clients
# reach this cluster through SLURM_CONF=$EGOINDEX_SLURM_DIR/slurm.conf (start prints it), and jobs
# inherit it (sbatch exports the environment). The ports ($EGOINDEX_SLURM_PORT and the next one,
# default 16817/16818) are not Slurm's defaults for the same reason; $EGOINDEX_SLURM_CPUS (default
# 2) sets the node's CPUs. `start` always begins a fresh cluster (no jobs, job ids from 1): the tests own it.
# `install` is what scripts/test.sh runs (as scripts/browser.sh does for Chromium); `start` fails
# with the reason on stderr when it cannot (not root, no binaries, a daemon that dies), and the
# tests then skip with that reason (or fail, under EGOINDEX_REQUIRE_SLURM=1, which .ci/run sets).
set -euo pipefail
DIR="${EGOINDEX_SLURM_DIR:-/tmp/egoindex-slurm}"
CONF="$DIR/slurm.conf"
CPUS="${EGOINDEX_SLURM_CPUS:-2}"
PORT="${EGOINDEX_SLURM_PORT:-16817}"  # slurmctld's; slurmd listens on the next one
HOST="$(uname -n)"
HOST="${HOST%%.*}"  # slurmctld checks that it runs on SlurmctldHost: this machine's short name
NODE=localhost      # the compute node's name: what jobs see in SLURM_JOB_NODELIST (and the templates
                    # use as the rendezvous host), so it must resolve wherever the cluster runs
export SLURM_CONF="$CONF"

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }
have_binaries() { command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch; } >/dev/null 2>&1

install_packages() {
  if have_binaries; then exit 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm_cluster.sh: slurm-wlm/munge are missing and cannot be installed here (needs root + apt-get);" \
         "the Slurm tests will be skipped with that reason" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The packages' own services must not start (no config yet, and the tests run their own
  # daemons): a policy-rc.d that denies every start, for the time of the install only.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && own_policy=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; } || rc=$?
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
  [ "$rc" = 0 ] || die "apt-get install slurm-wlm munge failed (exit $rc)"
  slurmctld -V
}

stop_pid() {  # stop_pid FILE: stop the daemon whose pid is in FILE (if it still runs), wait for it
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_cluster() {
  stop_pid "$DIR/slurmd.pid"
  stop_pid "$DIR/slurmctld.pid"
  stop_pid "$DIR/munged.pid"
}

write_conf() {
  # SlurmdParameters=config_overrides: the node is what this file says (2 CPUs, 4 GB), whatever
  # the host has, so a bigger or smaller machine runs the same cluster. ReturnToService=2: a node
  # that was down comes back as soon as slurmd registers. MinJobAge: finished jobs stay visible to
  # `scontrol show job` (no accounting database) for the tests to read their state and exit code.
  cat > "$CONF" <<EOF
ClusterName=egoindex-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=10
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=120
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  # our own munged, as root, with its own key and socket (AuthInfo above): nothing of a system
  # munge is used or changed, and the folder may be one only root can enter (a pytest tmp dir)
  local m="$DIR/munge"
  install -d -m 0700 "$m"
  dd if=/dev/urandom of="$m/munge.key" bs=1 count=1024 status=none
  chmod 0400 "$m/munge.key"
  munged --force --socket="$m/munge.socket" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" || die "munged did not start (see $m/munged.log)"
  for _ in $(seq 50); do [ -s "$m/munged.pid" ] && break; sleep 0.1; done
  cp "$m/munged.pid" "$DIR/munged.pid"
  munge -n --socket="$m/munge.socket" | unmunge --socket="$m/munge.socket" >/dev/null \
    || die "munged does not answer (see $m/munged.log)"
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }

start_cluster() {
  [ "$(id -u)" = 0 ] || die "needs root (the test cluster runs slurmctld and slurmd as root)"
  have_binaries || die "slurmctld/slurmd/munged/sbatch not found: run 'bash scripts/slurm_cluster.sh install' (Debian's slurm-wlm and munge)"
  stop_cluster
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/munge"  # a fresh cluster: no jobs from an earlier start
  mkdir -p "$DIR/state" "$DIR/spool"
  write_conf
  start_munge
  slurmctld -f "$CONF" -c || die "slurmctld did not start (see $DIR/slurmctld.log)"
  slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start (see $DIR/slurmd.log)"
  local state=""
  for _ in $(seq 120); do
    state=$(node_state)
    case "$state" in
      idle) echo "SLURM_CONF=$CONF"; return 0 ;;
      down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "node $NODE is '${state:-unknown}', not idle, after 60 s (see $DIR/slurmctld.log and $DIR/slurmd.log)"
}

case "${1:-}" in
  install) install_packages ;;
  start) start_cluster ;;
  stop) stop_cluster ;;
  status) sinfo -N -l ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
