"""Where a study lives: an SQLAlchemy URL (default ``sqlite:///DIR/study.db``) opened as Optuna's RDBStorage, its
password masked in everything we print; trials left RUNNING by a dead worker are failed so that they do not count."""

from __future__ import annotations

import datetime
import os
import random
import re
import socket
import time

import optuna
from optuna.trial import TrialState

from tabularnet.data.schema import DataError

# NOTE: a worker's trials beat every minute; a RUNNING trial whose beat is older than the grace period belongs to
# a dead worker (another machine's: one of this machine is recognised at once by its process id, see stale_trials)
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 300
SQLITE_BUSY_SECONDS = 60  # how long a worker waits for another one's write to an SQLite file
OPEN_ATTEMPTS = 5
CREATION_RACES = ("already exists", "locked", "UNIQUE constraint", "duplicate key", "IntegrityError")
WORKER_ATTR = "worker"  # user attribute of each trial: "host:pid" of the process running it
UNCLAIMED_SECONDS = 120  # a worker records its id on its trial at once: a RUNNING trial without one is dead after this


def masked(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: mask what looks like user:password@
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the password of ``url`` masked wherever it appears."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        match = re.search(r"//[^/:@]*:([^@/]*)@", url)
        password = match.group(1) if match else None
    return text.replace(url, masked(url)).replace(str(password), "***") if password else text


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``; an unreachable or malformed URL is a one-line error naming ``--storage``."""
    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
        except Exception as err:  # SQLAlchemy's, the driver's, Optuna's: all say "cannot open it"
            # NOTE: workers that start together on a new database race to create its tables (and Optuna's
            # alembic_version row): the losers retry, and then find them
            if attempt + 1 < OPEN_ATTEMPTS and any(race in str(err) for race in CREATION_RACES):
                time.sleep(0.5 + random.random() * (attempt + 1))
                continue
            reason = scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, url)
            raise DataError(f"--storage {masked(url)}: cannot open the study storage ({reason})") from None
    raise AssertionError("unreachable")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _dead(trial, host: str) -> bool:
    """Whether the RUNNING ``trial`` belongs to a worker that is gone: a process of this machine that no longer
    runs, or none at all after ``UNCLAIMED_SECONDS`` (a worker killed between Optuna's creating the trial and its
    recording its id)."""
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        started = trial.datetime_start or datetime.datetime.now()
        return (datetime.datetime.now() - started).total_seconds() > UNCLAIMED_SECONDS
    worker_host, _, pid = str(worker).rpartition(":")
    return worker_host == host and pid.isdigit() and not _alive(int(pid))


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark FAIL the RUNNING trials of workers of this machine that no longer run (killed, crashed); the numbers
    of those trials. Workers of other machines are left to the heartbeat (failed after ``GRACE_SECONDS``)."""
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _dead(trial, host):
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(study.study_name), trial.number
            )
            try:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # another new worker failed it first
                continue
            failed.append(trial.number)
    return failed
