#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for testing `dlrun sweep hydra/launcher=submitit_slurm`.
#
#   scripts/slurm_cluster.sh install   apt-get install slurm-wlm munge (needs root)
#   scripts/slurm_cluster.sh start     write slurm.conf, start munged, slurmctld, slurmd; wait for an idle node
#   scripts/slurm_cluster.sh stop      stop the daemons this script started, by their pid
#   scripts/slurm_cluster.sh status    sinfo
#
# Everything lives in $DLRUNNER_SLURM_DIR (default /tmp/dlrunner-slurm): config, pids, logs, spool.
# Commands that talk to the cluster need SLURM_CONF=$DLRUNNER_SLURM_DIR/slurm.conf in their
# environment (`start` prints it).
set -euo pipefail
dir="${DLRUNNER_SLURM_DIR:-/tmp/dlrunner-slurm}"
conf="$dir/slurm.conf"
host="$(hostname)"

install() {
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

start() {
  mkdir -p "$dir"/{spool/ctld,spool/d,log,run}
  # munge: a key, then the daemon (a stale socket from an earlier start is forced over).
  if [ ! -s /etc/munge/munge.key ]; then mungekey -c -f -k /etc/munge/munge.key; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if ! pgrep -x munged >/dev/null; then
    munged --force --pid-file="$dir/run/munged.pid" </dev/null >/dev/null 2>&1
  fi
  local memory_mb=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$conf" <<CONF
ClusterName=dlrunner-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldPort=16817
SlurmdPort=16818
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmdSpoolDir=$dir/spool/d
StateSaveLocation=$dir/spool/ctld
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$conf"
  # The daemons must not hold the caller's stdout/stderr open (a caller reading them would wait forever).
  slurmctld -f "$conf" </dev/null >/dev/null 2>&1
  slurmd -f "$conf" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "SLURM is up: export SLURM_CONF=$conf"
      return
    fi
    sleep 1
  done
  echo "SLURM did not come up; logs in $dir/log" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  exit 1
}

stop() {
  # By pid, daemons this script started only; wait for each to exit (SIGKILL after 15 s).
  for name in slurmd slurmctld munged; do
    pid_file="$dir/run/$name.pid"
    [ -s "$pid_file" ] || continue
    pid="$(cat "$pid_file")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
}

status() {
  SLURM_CONF="$conf" sinfo
}

"${1:?usage: $0 install|start|stop|status}"
