"""A fake SLURM cluster on one machine, for testing the workflow's SLURM profile end to end.

The executables next to this file (`sbatch`, `squeue`, `sacct`, `srun`, `sinfo`, `scontrol`,
`sacctmgr`, `scancel`) all run this module with their own name as the first argument. Put this
directory first on PATH and snakemake-executor-plugin-slurm submits, polls and cancels through it:

* `sbatch` parses its options, records the command line and the parsed request as one JSON line in
  `$FAKE_SLURM_DIR/submissions.jsonl`, assigns a job id, and runs the job script (or `--wrap`
  command) *locally* in the background, in its own session, with the usual `SLURM_*` variables,
  stdout/stderr to `--output`, and the `--time` limit enforced (state TIMEOUT).
* Per-job state lives in `$FAKE_SLURM_DIR/jobs/<id>/state.json`: PENDING → RUNNING → COMPLETED,
  FAILED (with exit code), TIMEOUT or CANCELLED. `sacct` and `squeue` answer from these files in
  the formats the plugin parses (`--parsable2 --format=JobIdRaw,State`, `--format='%i|%T'`).
* `srun` (used by the plugin's job step inside the job) records its options in
  `$FAKE_SLURM_DIR/srun.jsonl` and execs the wrapped command.
* Every call of every command is logged to `$FAKE_SLURM_DIR/calls.jsonl` (when the variable is set).
* `sinfo`, `scontrol show config|partition|job`, `sacctmgr list user` describe a small cluster:
  partitions `$FAKE_SLURM_PARTITIONS` (default `cpu,gpu`, the first is the default) and accounts
  `$FAKE_SLURM_ACCOUNTS` (default `test`). `sbatch` rejects an unknown account or partition the way
  SLURM does.

Fault injection: `FAKE_SLURM_FAIL_FIRST=<substring>` makes the first submitted job whose `sbatch`
command line contains the substring (job name, comment, wrapped command, ...) fail without running:
it is reported FAILED with exit code 1, so a retry has to resubmit it. Only the first match fails.

Only the Python standard library is used, so any Python 3 runs it (`$FAKE_SLURM_PYTHON`, default
`python3`).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve()
FIRST_JOB_ID = 4200001
ACTIVE = ("PENDING", "RUNNING")
HOST = "fakenode01"
CLUSTER = "fakecluster"


# ----------------------------------------------------------------------------------------------
# helpers


def die(command: str, message: str, code: int = 1) -> None:
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(code)


def state_dir(command: str) -> Path:
    value = os.environ.get("FAKE_SLURM_DIR")
    if not value:
        die(command, "FAKE_SLURM_DIR is not set (the fake cluster keeps its state there)")
    path = Path(value)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(path: Path):
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_jsonl(path: Path, record: dict) -> None:
    with locked(path.with_suffix(".lock")):
        with open(path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def partitions() -> list[str]:
    return [p.strip() for p in os.environ.get("FAKE_SLURM_PARTITIONS", "cpu,gpu").split(",") if p.strip()]


def accounts() -> list[str]:
    return [a.strip() for a in os.environ.get("FAKE_SLURM_ACCOUNTS", "test").split(",") if a.strip()]


def parse_options(argv: list[str], value_opts: set[str], flag_opts: set[str], stop_at_positional: bool):
    """SLURM-style option parsing: `--opt=value`, `--opt value`, `-o value`, `-ovalue`, `-nX`
    (combined short flags). Returns ([(option, value_or_None)], positionals). Unknown long options
    without `=` are taken as flags; with `stop_at_positional`, everything from the first positional
    argument on is returned untouched (a command and its own options)."""
    options: list[tuple[str, str | None]] = []
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals.extend(argv[i + 1:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            if eq:
                options.append((name, value))
            elif name in value_opts and i + 1 < len(argv):
                options.append((name, argv[i + 1]))
                i += 1
            else:
                options.append((name, None))
        elif arg.startswith("-") and len(arg) > 1 and not re.fullmatch(r"-\d+", arg):
            j = 1
            while j < len(arg):
                name = "-" + arg[j]
                if name in value_opts:
                    rest = arg[j + 1:]
                    if rest.startswith("="):
                        rest = rest[1:]
                    if rest:
                        options.append((name, rest))
                    elif i + 1 < len(argv):
                        options.append((name, argv[i + 1]))
                        i += 1
                    else:
                        options.append((name, None))
                    break
                options.append((name, None))
                j += 1
        else:
            if stop_at_positional:
                positionals.extend(argv[i:])
                break
            positionals.append(arg)
        i += 1
    return options, positionals


def option(options, *names, default=None):
    """The last value given for any of `names` (SLURM: the last occurrence wins)."""
    found = default
    for name, value in options:
        if name in names:
            found = value
    return found


def has_flag(options, *names) -> bool:
    return any(name in names for name, _ in options)


def parse_minutes(value: str | None) -> float | None:
    """SLURM time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if value is None or value in ("", "UNLIMITED", "infinite"):
        return None
    days = 0
    if "-" in value:
        day_part, value = value.split("-", 1)
        days = int(day_part)
        parts = [int(p) for p in value.split(":")]
        hours, minutes, seconds = (parts + [0, 0, 0])[:3]
        return days * 1440 + hours * 60 + minutes + seconds / 60
    parts = [int(p) for p in value.split(":")]
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def parse_mem_mb(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", value.strip(), re.IGNORECASE)
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    return int(number * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def job_dirs(root: Path):
    jobs = root / "jobs"
    if not jobs.is_dir():
        return []
    return sorted((p for p in jobs.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def load_job(path: Path) -> dict | None:
    try:
        return {**read_json(path / "record.json"), **read_json(path / "state.json")}
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def set_state(root: Path, jobid: str, **changes) -> dict:
    path = root / "jobs" / jobid / "state.json"
    with locked(root / "jobs" / jobid / ".state.lock"):
        state = read_json(path) if path.exists() else {}
        if state.get("state") == "CANCELLED" and changes.get("state") not in (None, "CANCELLED"):
            return state  # a cancelled job stays cancelled
        state.update(changes)
        write_json(path, state)
    return state


def expand_output_pattern(pattern: str, jobid: str, job_name: str) -> str:
    replacements = {"%j": jobid, "%J": jobid, "%A": jobid, "%a": "0", "%x": job_name,
                    "%u": getpass.getuser(), "%N": HOST, "%%": "%"}
    return re.sub(r"%[jJAaxuN%]", lambda m: replacements[m.group(0)], pattern)


# ----------------------------------------------------------------------------------------------
# sbatch

SBATCH_VALUES = {
    "-A", "--account", "-p", "--partition", "-t", "--time", "-J", "--job-name", "-o", "--output",
    "-e", "--error", "-D", "--chdir", "--workdir", "-c", "--cpus-per-task", "-n", "--ntasks",
    "-N", "--nodes", "-G", "--gpus", "--gres", "--mem", "--mem-per-cpu", "--mem-per-gpu",
    "--cpus-per-gpu", "--ntasks-per-gpu", "--ntasks-per-node", "-C", "--constraint", "--qos", "-q",
    "--comment", "--wrap", "--export", "--clusters", "-M", "--array", "-a", "--exclude", "-x",
    "--reservation", "--dependency", "-d", "--gpus-per-task", "--gpus-per-node",
}
SBATCH_FLAGS = {"--parsable", "--requeue", "--no-requeue", "--exclusive", "-H", "--hold", "-W", "--wait"}


def sbatch(argv: list[str]) -> None:
    root = state_dir("sbatch")
    options, positionals = parse_options(argv, SBATCH_VALUES, SBATCH_FLAGS, stop_at_positional=True)
    wrap = option(options, "--wrap")
    if option(options, "--array", "-a") is not None:
        die("sbatch", "the fake cluster does not support job arrays (--array)")
    if wrap is not None:
        script = f"#!/bin/sh\n{wrap}\n"
    elif positionals:
        source = positionals[0]
        script = sys.stdin.read() if source in ("-", "/dev/stdin") else Path(source).read_text()
    else:
        script = sys.stdin.read()
    if not script.strip():
        die("sbatch", "Batch job submission failed: empty job script")

    account = option(options, "-A", "--account")
    partition = option(options, "-p", "--partition")
    if account is not None and account.lower() not in [a.lower() for a in accounts()]:
        die("sbatch", "Batch job submission failed: Invalid account or account/partition "
                      f"combination specified (account '{account}')")
    if partition is None:
        partition = partitions()[0]
    elif partition not in partitions():
        die("sbatch", f"invalid partition specified: {partition}")
    job_name = option(options, "-J", "--job-name") or (Path(positionals[0]).name if positionals else "wrap")
    workdir = option(options, "-D", "--chdir", "--workdir") or os.getcwd()
    time_minutes = parse_minutes(option(options, "-t", "--time"))
    gpus = option(options, "-G", "--gpus")
    request = {
        "account": account,
        "partition": partition,
        "job_name": job_name,
        "comment": option(options, "--comment"),
        "time": option(options, "-t", "--time"),
        "time_minutes": time_minutes,
        "mem_mb": parse_mem_mb(option(options, "--mem")),
        "mem_per_cpu_mb": parse_mem_mb(option(options, "--mem-per-cpu")),
        "cpus_per_task": as_int(option(options, "-c", "--cpus-per-task")),
        "cpus_per_gpu": as_int(option(options, "--cpus-per-gpu")),
        "ntasks": as_int(option(options, "-n", "--ntasks")),
        "nodes": as_int(option(options, "-N", "--nodes")),
        "gpus": gpus,
        "gres": option(options, "--gres"),
        "constraint": option(options, "-C", "--constraint"),
        "qos": option(options, "--qos", "-q"),
        "output": option(options, "-o", "--output"),
        "workdir": workdir,
        "export": option(options, "--export", default="ALL"),
    }

    with locked(root / "jobid.lock") as handle:
        handle.seek(0)
        last = handle.read().strip()
        jobid = str(int(last) + 1 if last else FIRST_JOB_ID)
        handle.seek(0)
        handle.truncate()
        handle.write(jobid)

    cmdline = shlex.join(["sbatch", *argv])
    inject = os.environ.get("FAKE_SLURM_FAIL_FIRST")
    injected = False
    if inject and inject in cmdline:
        try:
            os.close(os.open(root / "fail_first.done", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            injected = True
        except FileExistsError:
            pass

    job_dir = root / "jobs" / jobid
    job_dir.mkdir(parents=True)
    (job_dir / "script.sh").write_text(script)
    output = request["output"] or str(Path(workdir) / "slurm-%j.out")
    output = expand_output_pattern(output, jobid, job_name)
    if not os.path.isabs(output):
        output = str(Path(workdir) / output)
    record = {"jobid": jobid, "argv": ["sbatch", *argv], "cmdline": cmdline, "request": request,
              "output_file": output, "submitted_at": time.time(), "injected_failure": injected,
              "user": getpass.getuser()}
    write_json(job_dir / "record.json", record)
    write_json(job_dir / "state.json", {"state": "PENDING", "exit_code": None})
    append_jsonl(root / "submissions.jsonl", record)

    if injected:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(f"fake-slurm: job {jobid} failed by FAKE_SLURM_FAIL_FIRST={inject!r}\n")
        set_state(root, jobid, state="FAILED", exit_code=1, reason="InjectedFailure",
                  start=time.time(), end=time.time())
    else:
        python = os.environ.get("FAKE_SLURM_PYTHON", sys.executable)
        subprocess.Popen([python, str(HERE), "_run", jobid], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, cwd=workdir)

    clusters = option(options, "--clusters", "-M")
    if has_flag(options, "--parsable"):
        print(f"{jobid};{clusters}" if clusters else jobid)
    else:
        print(f"Submitted batch job {jobid}" + (f" on cluster {clusters}" if clusters else ""))


def job_environment(record: dict) -> dict:
    request = record["request"]
    export = request.get("export") or "ALL"
    names = [e for e in export.split(",") if e]
    if names and names[0] == "NONE":
        env = {k: os.environ[k] for k in ("PATH", "HOME", "USER", "LANG") if k in os.environ}
        names = names[1:]
    else:
        env = dict(os.environ)
        names = [n for n in names if n != "ALL"]
    for item in names:
        key, eq, value = item.partition("=")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    jobid = record["jobid"]
    env.update({
        "SLURM_JOB_ID": jobid, "SLURM_JOBID": jobid, "SLURM_JOB_NAME": request["job_name"],
        "SLURM_JOB_PARTITION": request["partition"], "SLURM_CLUSTER_NAME": CLUSTER,
        "SLURM_SUBMIT_DIR": request["workdir"], "SLURM_SUBMIT_HOST": socket.gethostname(),
        "SLURM_JOB_NODELIST": HOST, "SLURM_NODELIST": HOST, "SLURMD_NODENAME": HOST,
        "SLURM_JOB_NUM_NODES": str(request.get("nodes") or 1),
        "SLURM_NTASKS": str(request.get("ntasks") or 1),
    })
    if request.get("account"):
        env["SLURM_JOB_ACCOUNT"] = request["account"]
    if request.get("cpus_per_task"):
        env["SLURM_CPUS_PER_TASK"] = str(request["cpus_per_task"])
    if request.get("mem_mb"):
        env["SLURM_MEM_PER_NODE"] = str(request["mem_mb"])
    if request.get("gpus"):
        env["SLURM_GPUS"] = str(request["gpus"])
    return env


def run_job(jobid: str) -> None:
    """The background half of sbatch: run one job script to completion and record its state."""
    root = state_dir("slurmd")
    job_dir = root / "jobs" / jobid
    record = read_json(job_dir / "record.json")
    request = record["request"]
    output = Path(record["output_file"])
    output.parent.mkdir(parents=True, exist_ok=True)
    set_state(root, jobid, state="RUNNING", start=time.time(), pid=os.getpid(), pgid=os.getpgid(0))
    limit = request.get("time_minutes")
    with open(output, "ab") as log:
        proc = subprocess.Popen(["/bin/sh", str(job_dir / "script.sh")], cwd=request["workdir"],
                                env=job_environment(record), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=limit * 60 if limit else None)
            state = "COMPLETED" if code == 0 else "FAILED"
            reason = None if code == 0 else "NonZeroExitCode"
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            code, state, reason = 0, "TIMEOUT", "TimeLimit"
            log.write(f"slurmstepd: error: *** JOB {jobid} CANCELLED DUE TO TIME LIMIT ***\n".encode())
    set_state(root, jobid, state=state, exit_code=code if code >= 0 else 128 - code,
              reason=reason, end=time.time())


# ----------------------------------------------------------------------------------------------
# queries: sacct, squeue


def select_jobs(root: Path, ids: list[str] | None, name: str | None, user: str | None):
    wanted = {i.split(".")[0].split("_")[0] for i in ids} if ids else None
    jobs = []
    for path in job_dirs(root):
        job = load_job(path)
        if job is None:
            continue
        if wanted is not None and job["jobid"] not in wanted:
            continue
        if name is not None and job["request"]["job_name"] not in name.split(","):
            continue
        if user is not None and job.get("user") != user:
            continue
        jobs.append(job)
    return jobs


def elapsed(job: dict) -> str:
    start = job.get("start")
    if not start:
        return "00:00:00"
    seconds = int((job.get("end") or time.time()) - start)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def sacct_field(job: dict, field: str, step: str | None) -> str:
    request = job["request"]
    key = field.lower()
    jobid = job["jobid"] + (f".{step}" if step else "")
    values = {
        "jobid": jobid, "jobidraw": jobid, "jobname": request["job_name"] if not step else step,
        "state": job["state"], "exitcode": f"{job.get('exit_code') or 0}:0",
        "account": request.get("account") or "", "partition": request["partition"],
        "nodelist": HOST, "reason": job.get("reason") or "None", "comment": request.get("comment") or "",
        "elapsed": elapsed(job), "timelimit": request.get("time") or "UNLIMITED",
        "reqmem": f"{request.get('mem_mb') or 0}M", "alloccpus": str(request.get("cpus_per_task") or 1),
        "ncpus": str(request.get("cpus_per_task") or 1), "user": job.get("user", ""),
        "cluster": CLUSTER, "totalcpu": "00:00:00", "cputimeraw": "0", "maxrss": "0",
        "submit": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(job.get("submitted_at", 0))),
    }
    return values.get(key, "")


def parse_fields(spec: str, default: str) -> list[tuple[str, int | None]]:
    fields = []
    for item in (spec or default).split(","):
        name, _, width = item.partition("%")
        fields.append((name.strip(), abs(int(width)) if width.strip("-").isdigit() else None))
    return fields


SACCT_VALUES = {"-j", "--jobs", "-o", "--format", "-S", "--starttime", "-E", "--endtime",
                "--name", "-u", "--user", "-M", "--clusters", "-s", "--state", "-A", "--accounts"}


def sacct(argv: list[str]) -> None:
    root = state_dir("sacct")
    options, positionals = parse_options(argv, SACCT_VALUES, set(), stop_at_positional=False)
    fields = parse_fields(option(options, "-o", "--format"), "JobID,JobName,Partition,Account,State,ExitCode")
    parsable = has_flag(options, "-P", "--parsable2", "-p", "--parsable")
    trailing = "|" if has_flag(options, "-p", "--parsable") else ""
    ids = option(options, "-j", "--jobs")
    ids = [i for i in ids.split(",") if i] if ids else None
    user = option(options, "-u", "--user")
    if user is None and not ids and option(options, "--name") is None:
        user = getpass.getuser()
    jobs = select_jobs(root, ids, option(options, "--name"), user if not has_flag(options, "-a", "--allusers") else None)
    lines = []
    if not has_flag(options, "-n", "--noheader"):
        header = [name for name, _ in fields]
        lines.append("|".join(header) + trailing if parsable else " ".join(f"{h:>10}" for h in header))
    for job in jobs:
        rows = [None]
        if ids and any("." in i for i in ids):
            # a step query: `<id>.<step>`; the fake job has one step, `batch` (and `0`, the srun step)
            rows = [i.split(".", 1)[1] for i in ids if i.split(".")[0] == job["jobid"] and "." in i]
            rows = [s for s in rows if s in ("batch", "0") and job["state"] not in ACTIVE + ("CANCELLED",)]
        elif not has_flag(options, "-X", "--allocations") and job["state"] not in ("PENDING",):
            rows = [None, "batch"]
        for step in rows:
            values = [sacct_field(job, name, step) for name, _ in fields]
            if parsable:
                lines.append("|".join(values) + trailing)
            else:
                lines.append(" ".join(f"{v:>{w or 10}}" for v, (_, w) in zip(values, fields)))
    if positionals[:2] == ["|", "tail"]:
        # The plugin's account guess runs `sacct -nu USER -o Account%256 | tail -1` without a shell,
        # so the pipe reaches sacct as arguments; answer as the pipeline would.
        count = int(positionals[2].lstrip("-")) if len(positionals) > 2 else 10
        lines = lines[-count:]
    if lines:
        print("\n".join(lines))


SQUEUE_CODES = {"i": "jobid", "A": "jobid", "T": "state", "t": "state_compact", "j": "name", "P": "partition",
                "u": "user", "a": "account", "M": "elapsed", "l": "timelimit", "N": "nodelist",
                "C": "cpus", "k": "comment", "r": "reason", "R": "reason", "D": "nodes"}
COMPACT = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "CANCELLED": "CA",
           "TIMEOUT": "TO"}
SQUEUE_VALUES = {"-o", "--format", "-t", "--states", "-n", "--name", "-j", "--jobs", "-u", "--user",
                 "-p", "--partition", "-M", "--clusters", "-A", "--account"}


def squeue(argv: list[str]) -> None:
    root = state_dir("squeue")
    options, _ = parse_options(argv, SQUEUE_VALUES, set(), stop_at_positional=False)
    fmt = option(options, "-o", "--format", default="%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R")
    states = (option(options, "-t", "--states") or "PENDING,RUNNING").upper()
    ids = option(options, "-j", "--jobs")
    user = option(options, "-u", "--user")
    if has_flag(options, "--me"):
        user = getpass.getuser()
    jobs = select_jobs(root, ids.split(",") if ids else None, option(options, "-n", "--name"), user)
    if states != "ALL":
        wanted = {s.strip() for s in states.split(",")}
        jobs = [j for j in jobs if j["state"] in wanted or COMPACT.get(j["state"]) in wanted]

    def render(job: dict | None) -> str:
        def field(match):
            code = match.group(2)
            if job is None:
                return {"i": "JOBID", "A": "JOBID", "T": "STATE", "t": "ST", "j": "NAME", "P": "PARTITION",
                        "u": "USER", "a": "ACCOUNT", "M": "TIME", "l": "TIME_LIMIT", "N": "NODELIST",
                        "C": "CPUS", "k": "COMMENT", "r": "REASON", "R": "NODELIST(REASON)",
                        "D": "NODES"}.get(code, code.upper())
            request = job["request"]
            value = {"jobid": job["jobid"], "state": job["state"],
                     "state_compact": COMPACT.get(job["state"], job["state"]), "name": request["job_name"],
                     "partition": request["partition"], "user": job.get("user", ""),
                     "account": request.get("account") or "", "elapsed": elapsed(job),
                     "timelimit": request.get("time") or "UNLIMITED", "nodelist": HOST,
                     "cpus": str(request.get("cpus_per_task") or 1), "comment": request.get("comment") or "",
                     "reason": job.get("reason") or "None", "nodes": "1"}[SQUEUE_CODES.get(code, "jobid")]
            width = match.group(1).lstrip(".")
            return f"{value:>{int(width)}}" if width.isdigit() else value
        return re.sub(r"%(\.?\d*)([a-zA-Z])", field, fmt)

    lines = [] if has_flag(options, "-h", "--noheader") else [render(None)]
    lines.extend(render(job) for job in jobs)
    if lines:
        print("\n".join(lines))


def scancel(argv: list[str]) -> None:
    root = state_dir("scancel")
    options, positionals = parse_options(argv, {"-u", "--user", "-n", "--name", "-M", "--clusters"}, set(),
                                         stop_at_positional=False)
    user = option(options, "-u", "--user")
    if has_flag(options, "--me"):
        user = getpass.getuser()
    ids = [p for p in positionals if p]
    if not ids and user is None and option(options, "-n", "--name") is None:
        die("scancel", "No job identification provided")
    for job in select_jobs(root, ids or None, option(options, "-n", "--name"), user):
        if job["state"] not in ACTIVE:
            continue
        set_state(root, job["jobid"], state="CANCELLED", reason="CancelledByUser", end=time.time())
        if job.get("pgid"):
            try:
                os.killpg(job["pgid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


# ----------------------------------------------------------------------------------------------
# cluster description: sinfo, scontrol, sacctmgr; and srun


def sinfo(argv: list[str]) -> None:
    options, _ = parse_options(argv, {"-o", "--format", "-p", "--partition", "-M", "--clusters"}, set(),
                               stop_at_positional=False)
    fmt = option(options, "-o", "--format", default="%P %a %l %D %t %N")
    names = partitions()

    def render(name: str | None, index: int) -> str:
        def field(match):
            code = match.group(2)
            if name is None:
                return {"P": "PARTITION", "a": "AVAIL", "l": "TIMELIMIT", "D": "NODES", "t": "STATE",
                        "N": "NODELIST", "G": "GRES", "c": "CPUS", "m": "MEMORY"}.get(code, code.upper())
            return {"P": name + ("*" if index == 0 else ""), "a": "up", "l": "1-00:00:00", "D": "1",
                    "t": "idle", "N": HOST, "G": "gpu:4" if "gpu" in name else "(null)",
                    "c": str(os.cpu_count() or 1), "m": "128000"}.get(code, "")
        return re.sub(r"%(\.?\d*)([a-zA-Z])", field, fmt)

    lines = [] if has_flag(options, "-h", "--noheader") else [render(None, 0)]
    lines.extend(render(name, i) for i, name in enumerate(names))
    print("\n".join(lines))


def scontrol(argv: list[str]) -> None:
    if argv[:2] == ["show", "config"] or argv[:1] == ["show"] and argv[1:2] == ["conf"]:
        print("Configuration data as of 2024-01-01T00:00:00\n"
              f"ClusterName             = {CLUSTER}\n"
              "MaxArraySize            = 1001\n"
              "MinJobAge               = 300 sec\n"
              "SLURM_VERSION           = 23.11.0")
    elif argv[:2] == ["show", "partition"]:
        names = partitions()
        for i, name in enumerate(names):
            if len(argv) > 2 and argv[2] != name:
                continue
            gres = " TRES=cpu=16,mem=128000M,node=1,gres/gpu=4" if "gpu" in name else " TRES=cpu=16,mem=128000M,node=1"
            print(f"PartitionName={name}\n   Default={'YES' if i == 0 else 'NO'} MaxNodes=UNLIMITED"
                  f" MaxTime=1-00:00:00 MinNodes=0\n   Nodes={HOST}\n   State=UP TotalCPUs=16 TotalNodes=1"
                  f" MaxMemPerNode=UNLIMITED\n  {gres}\n")
    elif argv[:2] == ["show", "job"] and len(argv) > 2:
        root = state_dir("scontrol")
        jobs = select_jobs(root, [argv[2]], None, None)
        if not jobs:
            die("scontrol", "Invalid job id specified")
        job = jobs[0]
        print(f"JobId={job['jobid']} JobName={job['request']['job_name']}\n   JobState={job['state']}"
              f" ExitCode={job.get('exit_code') or 0}:0 Partition={job['request']['partition']}")
    else:
        die("scontrol", f"fake scontrol does not know: {' '.join(argv)}")


def sacctmgr(argv: list[str]) -> None:
    words = [a.lower() for a in argv if not a.startswith("-")]
    if ("list" in words or "show" in words) and ("user" in words or "account" in words or "assoc" in words):
        print("\n".join(f"{a:>20}" for a in accounts()))
    else:
        die("sacctmgr", f"fake sacctmgr does not know: {' '.join(argv)}")


SRUN_VALUES = {"-n", "--ntasks", "-c", "--cpus-per-task", "-N", "--nodes", "-G", "--gpus", "--gres",
               "--mem", "--mem-per-cpu", "--cpus-per-gpu", "-J", "--job-name", "--jobid", "-t", "--time",
               "-p", "--partition", "-A", "--account", "--cpu-bind", "--ntasks-per-gpu", "-o", "--output",
               "-e", "--error", "-D", "--chdir", "--export"}


def srun(argv: list[str]) -> None:
    options, command = parse_options(argv, SRUN_VALUES, {"--exclusive", "--overlap", "-l"},
                                     stop_at_positional=True)
    if not command:
        die("srun", "no command given")
    if os.environ.get("FAKE_SLURM_DIR"):
        append_jsonl(Path(os.environ["FAKE_SLURM_DIR"]) / "srun.jsonl", {
            "jobid": os.environ.get("SLURM_JOB_ID"), "argv": ["srun", *argv],
            "options": [[n, v] for n, v in options], "command": command,
        })
    os.execvp(command[0], command)


COMMANDS = {"sbatch": sbatch, "_run": lambda argv: run_job(argv[0]), "sacct": sacct, "squeue": squeue,
            "scancel": scancel, "sinfo": sinfo, "scontrol": scontrol, "sacctmgr": sacctmgr, "srun": srun}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: fake_slurm.py {{{','.join(COMMANDS)}}} [args...]")
    if sys.argv[1] != "_run" and os.environ.get("FAKE_SLURM_DIR"):
        Path(os.environ["FAKE_SLURM_DIR"]).mkdir(parents=True, exist_ok=True)
        append_jsonl(Path(os.environ["FAKE_SLURM_DIR"]) / "calls.jsonl", {"argv": sys.argv[1:], "time": time.time()})
    COMMANDS[sys.argv[1]](sys.argv[2:])
