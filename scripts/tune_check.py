"""`make tune-check`: two `tabularnet tune` workers share one study on a throwaway PostgreSQL server.

Starts a PostgreSQL server in a temporary folder (its own data directory, a free TCP port on 127.0.0.1 and a unix
socket there; run as an unprivileged user when we are root, since initdb refuses root), with a password, runs two
workers of one study on the tiny Adult table at once, and checks: every trial number recorded once, the study has
its trials, both workers ran trials, and the password appears in none of the workers' output and files. The
server is stopped and its folder deleted at the end. Exit status 0 when every check passes, 1 otherwise, 2 when
no PostgreSQL binaries are found.

    python scripts/tune_check.py                 # binaries from $PG_BIN, PATH or /usr/lib/postgresql/*/bin
    python scripts/tune_check.py --n-trials 8 --keep /tmp/tune-check   # keep the workers' output
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY_DATASETS = ROOT / "tests" / "data" / "datasets"
BASE = {
    "seed_everything": 0,
    "data": {"dataset": "adult", "batch_size": 64},
    "model": {"class_path": "tabularnet.MLPLightningModule", "init_args": {"hidden_dims": [16]}},
    "trainer": {"max_epochs": 3},
}
SPACE = {
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "model.init_args.optimizer.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
    "model.init_args.hidden_dims": {"type": "categorical", "choices": [[8], [16, 16]]},
}
USERS = ("postgres", "nobody")  # who runs the server when we are root


def find_bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: $PG_BIN, PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    candidates = [os.environ.get("PG_BIN", ""), os.path.dirname(shutil.which("initdb") or "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").exists()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL server in ``folder`` on 127.0.0.1:``port`` with user ``tune`` and a random password."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir, self.folder, self.port = bin_dir, folder, free_port()
        self.password = secrets.token_hex(12)
        self.user = next((u for u in USERS if _exists(u)), None) if os.geteuid() == 0 else None

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, cwd=self.folder)

    def start(self) -> None:
        if self.user:  # the server's files belong to the unprivileged user
            shutil.chown(self.folder, self.user)
        (self.folder / "pw").write_text(self.password)
        data, log = self.folder / "data", self.folder / "server.log"
        self.run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", "tune", "--auth=scram-sha-256",
                 f"--pwfile={self.folder / 'pw'}", "--no-sync")  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        try:
            self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://tune:{self.password}@127.0.0.1:{self.port}/postgres"


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def run_workers(url: str, folder: Path, n_trials: int) -> list[tuple[int, str]]:
    """Two ``tabularnet tune`` processes of one study at once; their exit status and output."""
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    env = {**os.environ, "TABULARNET_DATA_DIR": str(TINY_DATASETS), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "tabularnet", "tune", "--config", str(folder / "base.yaml"),
        "--search_space", str(folder / "space.yaml"), "--n_trials", str(n_trials), "--storage", url,
        "--study_name", "tune-check", "--output_dir", str(folder / "out"),
    ]  # fmt: skip
    logs = [folder / f"worker{i}.log" for i in range(2)]
    workers = [subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env) for log in logs]
    return [(w.wait(timeout=900), log.read_text()) for w, log in zip(workers, logs)]


def check(url: str, password: str, folder: Path, n_trials: int, results: list[tuple[int, str]]) -> list[str]:
    """One line per check: ``ok ...`` or ``FAIL ...``."""
    import optuna

    trials = optuna.load_study(study_name="tune-check", storage=url).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]  # pruned trials count as done
    workers = {t.user_attrs.get("worker") for t in trials}
    files = [p for p in (folder / "out").rglob("*") if p.is_file() and p.suffix not in (".ckpt", ".db")]
    leaked = [str(p) for p in files if password.encode() in p.read_bytes()]
    leaked += [f"worker{i}.log" for i, (_, out) in enumerate(results) if password in out]
    checks = [
        (all(code == 0 for code, _ in results), f"workers' exit status {[code for code, _ in results]}"),
        (sorted(numbers) == list(range(len(trials))), f"trial numbers recorded once: {sorted(numbers)}"),
        (n_trials <= len(finished) <= n_trials + 1, f"{len(finished)} finished trials of {n_trials} asked"),
        (all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), "no trial failed or left running"),
        (len(workers) == 2, f"trials by {len(workers)} workers"),
        ((folder / "out" / "best.yaml").exists(), "best.yaml written"),
        (
            not leaked,
            f"the password appears in no output ({len(files)} files, 2 logs){': ' if leaked else ''}"
            + ", ".join(leaked),
        ),  # fmt: skip
    ]
    return [f"{'ok  ' if ok else 'FAIL'} {line}" for ok, line in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=6)
    parser.add_argument("--keep", help="copy the workers' output folder here")
    options = parser.parse_args(argv)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("tune-check: no PostgreSQL found (apt-get install postgresql, or set $PG_BIN)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tune-check-") as tmp:
        os.chmod(tmp, 0o755)  # the server's user reaches its folder inside
        server = Server(bin_dir, Path(tmp) / "pg")
        server.folder.mkdir()
        work = Path(tmp) / "work"
        work.mkdir()
        try:
            server.start()
            print(f"tune-check: PostgreSQL ({bin_dir}) on 127.0.0.1:{server.port}, run as {server.user or 'us'}")
            results = run_workers(server.url, work, options.n_trials)
            lines = check(server.url, server.password, work, options.n_trials, results)
        finally:
            server.stop()
        if options.keep:
            shutil.copytree(work, options.keep, dirs_exist_ok=True)
    print("\n".join(lines))
    failed = any(line.startswith("FAIL") for line in lines)
    if failed:
        for i, (_, out) in enumerate(results):
            print(f"--- worker{i} (last lines)\n" + "\n".join(out.splitlines()[-15:]))
    print("tune-check: " + ("FAILED" if failed else "two workers shared one PostgreSQL study"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
