"""A one-node SLURM cluster on localhost from Debian's packages (munge, slurmctld, slurmd), for the
test that runs the workflow through profiles/slurm.

Needs root. The SLURM executor removes SLURM_* variables from a job's environment, so the cluster's
configuration has to be the default /etc/slurm/slurm.conf: it is written only where none exists and
removed when the cluster stops. Job completions are recorded in <dir>/jobcomp.log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
# The node offers two CPUs per core: the quick config's jobs are short, and much of each is Python
# starting up and the executor's wait between status checks, so twice the jobs keep the cores busy.
CPUS_PER_CORE = 2
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun")


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [p for p in PROGRAMS if not shutil.which(p) and not Path("/usr/sbin", p).exists()]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}); .ci/run installs Debian's packages"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    if SLURM_CONF.exists():
        return f"{SLURM_CONF} exists: this machine has a SLURM configuration the test will not replace"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(d: Path) -> str:
    host = socket.gethostname().split(".")[0]
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024
    # No accounting database: job states come from squeue (kept for MinJobAge) and the jobcomp file.
    return f"""ClusterName=deepen-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MinJobAge=3600
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS_PER_CORE * os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _wait_for(ready, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not ready():
        if time.time() > deadline:
            raise RuntimeError(f"no {what} after {timeout} s")
        time.sleep(0.5)


@contextlib.contextmanager
def cluster(d: Path):
    """Start munged, slurmctld and slurmd with their state in ``d``; stop them and remove the
    configuration on exit."""
    d.chmod(0o755)  # munged wants its socket's directory searchable by all
    for sub in ("state", "spool"):
        (d / sub).mkdir(exist_ok=True)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(_conf(d))
    daemons = []
    try:
        daemons.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={d}/munge.sock", f"--key-file={key}",
             f"--log-file={d}/munged.log", f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed"]))
        _wait_for(lambda: (d / "munge.sock").exists(), "munged socket")
        daemons.append(subprocess.Popen(["slurmctld", "-D", "-i"]))
        daemons.append(subprocess.Popen(["slurmd", "-D"]))
        _wait_for(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
                  .stdout.strip() == "idle", "idle SLURM node")
        yield d
    finally:
        for p in reversed(daemons):
            p.terminate()
        for p in reversed(daemons):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        SLURM_CONF.unlink(missing_ok=True)
