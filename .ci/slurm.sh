#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine (Debian, run as root, no systemd needed), for CI and
# for the SLURM tests. Idempotent: a second run only checks that munged/slurmctld/slurmd are up and the
# node is usable. Config: /etc/slurm/slurm.conf; logs: /var/log/slurm/{slurmctld,slurmd,slurmdbd,jobcomp}.log.
# SLURM_ACCOUNTING=1 also sets up slurmdbd + MariaDB so that `sacct` works (submitit polls sacct for job
# states; without it, job.result() of a job that dies without writing a result waits forever). Without
# accounting use `scontrol show job` (kept MinJobAge s after the end) or /var/log/slurm/jobcomp.log.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

PACKAGES=(slurmctld slurmd slurm-client munge)
CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
STATEDIR=/var/lib/slurm
TIMEOUT=${SLURM_START_TIMEOUT:-60}
# Accounting: SLURM_ACCOUNTING=1/0; unset = keep it on where slurmdbd and MariaDB are already installed.
ACCOUNTING=${SLURM_ACCOUNTING:-$([ -x /usr/sbin/slurmdbd ] && [ -x /usr/sbin/mariadbd ] && echo 1 || echo 0)}
[ "$ACCOUNTING" = 1 ] && PACKAGES+=(slurmdbd mariadb-server)

die() {
	echo "slurm.sh: ERROR: $*" >&2
	for f in /var/log/munge/munged.log "$LOGDIR"/slurm{dbd,ctld,d}.log; do
		[ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }
	done
	exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root"

# alive NAME PIDFILE: the daemon in PIDFILE is running (not a zombie: PID 1 may be slow to reap).
alive() {
	local p s
	p=$(cat "$2" 2>/dev/null) && [ -n "$p" ] && s=$(cat "/proc/$p/stat" 2>/dev/null) && [[ $s == *"($1) "[!ZX]* ]]
}

# stop NAME PIDFILE: TERM the daemon and wait for it to exit.
stop() {
	alive "$1" "$2" || return 0
	local p
	p=$(cat "$2")
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 50); do alive "$1" "$2" || return 0; sleep 0.2; done
	kill -KILL "$p" 2>/dev/null || true
}

# 1. Packages.
BINARIES=(/usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sinfo /usr/sbin/munged)
[ "$ACCOUNTING" = 1 ] && BINARIES+=(/usr/sbin/slurmdbd /usr/sbin/mariadbd)
if ! ls "${BINARIES[@]}" >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" ||
		{ apt-get update -q && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } ||
		die "apt-get could not install ${PACKAGES[*]}"
fi

# 2. Munge: key (the package's postinst usually makes one) and daemon.
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
	dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! alive munged /run/munge/munged.pid; then
	rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
	runuser -u munge -- /usr/sbin/munged || die "munged did not start"
fi
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null | unmunge >/dev/null || die "munge does not work"

# 3. slurm.conf for this machine. The node is declared by CPU count only (no sockets/cores/threads) with
# CR_CPU, so every logical CPU is schedulable on its own even on hyper-threaded runners (with CR_Core a 2-vCPU
# = 1-core x 2-thread VM would run one 1-CPU job at a time and reject --ntasks-per-node=2).
HOST=$(hostname -s)
HW=$(slurmd -C) || die "slurmd -C failed" # NodeName=<host> CPUs=2 ... RealMemory=24105
[[ $HW =~ ^NodeName=([^ ]+).*\ CPUs=([0-9]+).*\ RealMemory=([0-9]+) ]] || die "unexpected 'slurmd -C' output: $HW"
NODE=${BASH_REMATCH[1]} CPUS=${BASH_REMATCH[2]} MEM=${BASH_REMATCH[3]}
install -d -m 0755 /etc/slurm "$LOGDIR" "$STATEDIR/slurmctld" "$STATEDIR/slurmd"
NEWCONF=$(
	cat <<EOF
# Written by .ci/slurm.sh (one-node cluster for CI/tests); every run rewrites it: edit the script instead.
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$(if [ "$ACCOUNTING" = 1 ]; then
		echo "AccountingStorageType=accounting_storage/slurmdbd"
		echo "AccountingStorageHost=127.0.0.1"
	else echo "AccountingStorageType=accounting_storage/none"; fi)
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
SchedulerType=sched/backfill
# Rescan pending jobs (e.g. requeued ones whose BeginTime passed) every 2 s instead of 60 s.
SchedulerParameters=sched_interval=2,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$STATEDIR/slurmctld
SlurmdSpoolDir=$STATEDIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ "$(cat "$CONF" 2>/dev/null)" != "$NEWCONF" ]; then
	printf '%s\n' "$NEWCONF" >"$CONF"
	chmod 0644 "$CONF"
	# A changed config needs fresh daemons (a node/host change is not picked up by reconfigure).
	stop slurmd /run/slurmd.pid
	stop slurmctld /run/slurmctld.pid
fi

# 4. Optional accounting: MariaDB (its init script works without systemd; setsid: own session), then slurmdbd.
if [ "$ACCOUNTING" = 1 ]; then
	mariadb-admin ping >/dev/null 2>&1 || setsid -w service mariadb start >/dev/null || die "MariaDB did not start"
	mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create the MariaDB user"
	DBDCONF="# Written by .ci/slurm.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db"
	if [ "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" != "$DBDCONF" ]; then
		(umask 077 && printf '%s\n' "$DBDCONF" >/etc/slurm/slurmdbd.conf)
		stop slurmdbd /run/slurmdbd.pid
	fi
	alive slurmdbd /run/slurmdbd.pid || slurmdbd || die "slurmdbd did not start"
	deadline=$((SECONDS + TIMEOUT))
	until sacctmgr -n list cluster >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || die "slurmdbd not answering after ${TIMEOUT}s"
		alive slurmdbd /run/slurmdbd.pid || die "slurmdbd exited"
		sleep 0.5
	done
	[ -n "$(sacctmgr -n list cluster ci format=cluster)" ] || sacctmgr -i add cluster ci >/dev/null ||
		die "could not register the cluster with slurmdbd"
fi

# 5. Daemons (they fork into the background themselves).
alive slurmctld /run/slurmctld.pid || /usr/sbin/slurmctld || die "slurmctld did not start"
alive slurmd /run/slurmd.pid || /usr/sbin/slurmd || die "slurmd did not start"

# 6. Wait until the node can take jobs; resume it if it is down/drained (e.g. after an unclean stop).
deadline=$((SECONDS + TIMEOUT))
while :; do
	state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1) || state=
	case "$state" in
	idle | mix | alloc | comp) break ;;
	down | drain | drng | fail) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
	esac
	alive slurmctld /run/slurmctld.pid || die "slurmctld exited"
	alive slurmd /run/slurmd.pid || die "slurmd exited"
	[ "$SECONDS" -lt "$deadline" ] ||
		die "node $NODE not usable after ${TIMEOUT}s (sinfo: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -n 3))"
	sleep 0.5
done
echo "slurm: node $NODE $state ($CPUS CPUs)"
