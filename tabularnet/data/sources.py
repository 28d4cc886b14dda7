"""Reading tables from files, and named datasets resolved under a data directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tabularnet.atomic import atomic_path
from tabularnet.data.schema import DataError, check_unique_columns

DATA_DIR_ENV = "TABULARNET_DATA_DIR"
# A mirror with the same layout as the data directory (``<url>/<name>/<file>``) for users without a local copy.
DATA_URL_ENV = "TABULARNET_DATA_URL"
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(source) -> pd.DataFrame:
    """Read a CSV (plain or gzipped) or Parquet file, or pass a DataFrame, pyarrow Table or array through as a
    DataFrame.

    Empty CSV fields are missing values; nothing else is here (the data module's ``na_values`` decides which
    text means missing).
    """
    if isinstance(source, pd.DataFrame):
        return source
    if hasattr(source, "to_pandas") and hasattr(source, "column_names"):  # pyarrow.Table / RecordBatch
        return source.to_pandas()
    if isinstance(source, np.ndarray):
        return pd.DataFrame(source, columns=[f"x{i}" for i in range(source.shape[1])])
    path = Path(source)
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        if name.endswith(PARQUET_SUFFIXES):
            df = pd.read_parquet(path)
        elif name.endswith(CSV_SUFFIXES):
            sep = "\t" if ".tsv" in name else ","
            # NOTE: pandas renames a repeated header name to "name.1"; read the header as written to catch it.
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
            check_unique_columns(header.iloc[0].tolist(), source=str(path))
            df = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""], low_memory=False)
        else:
            raise DataError(
                f"{path}: unknown file format (expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except Exception as err:  # pandas/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read the file ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if df.columns.size == 0:
        raise DataError(f"{path}: the file has no columns")
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as Parquet or CSV, chosen by the file name."""
    path = Path(path)
    with atomic_path(path) as tmp:  # a failed or killed write leaves the previous file, not half a table
        if path.name.lower().endswith(PARQUET_SUFFIXES):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: its files under ``<data_dir>/<name>/`` with their sha256, and its label column."""

    name: str
    files: dict[str, tuple[str, str]]  # split ("train", "test" or "data") -> (file name, sha256)
    target: str = "target"


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "adult",
            {
                "train": ("train.csv.gz", "69ec1db9c2fe6319c6f8798074d8bee36e54011bbe0d1c7001c1cc3e7cad24fb"),
                "test": ("test.csv", "79af49c3023631b0a577ae5258e7b9a9fc288bdf88cd05beb717ece54be53f5a"),
            },
        ),
        DatasetInfo(
            "covertype",
            {"train": ("data.csv.gz", "caa7558e746c04b14ac09ef1927b77985b85aabf9988e16db78f26cedc5c846a")},
        ),
        DatasetInfo(
            "higgs",
            {"train": ("data.csv.gz", "70ec479a1870368d98c10f215b7028eb95abd07e6f9660cb89726768218f2768")},
        ),
        DatasetInfo(
            "bank-marketing",
            {"train": ("data.csv.gz", "c78e33e8ab36c258f8825f56941d5f98868d12baf7123d4cd8d0a785e220cc84")},
        ),
        DatasetInfo(
            "electricity",
            {"train": ("data.csv.gz", "e5e830c5e824f34539a723248f034e18cd19c84d4772d4e8e09fbe1294841657")},
        ),
        DatasetInfo(
            "letter",
            {"train": ("data.csv", "1ac4b1762da07601472026b84541fafcc1e67c491dd90f98f1b15f69e9314678")},
        ),
        DatasetInfo(
            "magic-telescope",
            {"train": ("data.csv", "193dc11edf28a048da3263c8e6262cecdbefcacfcbf9779eb5095e7bd5de3d69")},
        ),
        DatasetInfo(
            "titanic",
            {"train": ("data.csv", "41ab8b5b129a10629e45dbd5994107df899049cb00617231f83ea7cf28c7cd36")},
        ),
        DatasetInfo(
            "credit-g",
            {"train": ("data.csv", "e65948a6a23e01064f0592fc8d90ddc66d41a8fb07c1215924092543ad0ca2cc")},
        ),
        DatasetInfo(  # regression: median house value in dollars
            "california",
            {"train": ("data.csv", "3b5b8ccfbaafb1bbb405eade50fa9f6b7ae121ee030c6844932ec6b95d1fb10d")},
        ),
        DatasetInfo(  # regression: price in dollars
            "diamonds",
            {"train": ("data.csv.gz", "8e261b24eb304cb763b61814a96ee5689195982d8a8f7be44c73bacaec16987d")},
        ),
    ]
}


def default_data_dir() -> Path:
    """``$TABULARNET_DATA_DIR``, else ``../shared/datasets`` beside the working directory or the package
    checkout when that exists, else ``~/.cache/tabularnet/datasets``."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return Path.home() / ".cache" / "tabularnet" / "datasets"


def dataset_files(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Local paths of dataset ``name``'s splits, downloading missing files from ``$TABULARNET_DATA_URL``."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    info = DATASETS[name]
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    paths = {}
    for split, (file_name, sha256) in info.files.items():
        path = root / name / file_name
        if not path.is_file():
            base_url = os.environ.get(DATA_URL_ENV)
            if not base_url:
                raise DataError(
                    f"dataset {name!r}: {path} not found; set {DATA_DIR_ENV} to the folder holding '{name}/' "
                    f"or {DATA_URL_ENV} to a mirror to download from"
                )
            download(f"{base_url.rstrip('/')}/{name}/{file_name}", path, sha256=sha256)
        paths[split] = path
    return paths


def download(url: str, dest: Path, *, sha256: str = "", timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its sha256 when one is given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
        except OSError as err:
            os.unlink(tmp.name)
            raise DataError(f"download of {url} failed: {err}") from None
    if sha256 and digest.hexdigest() != sha256:
        os.unlink(tmp.name)
        raise DataError(f"download of {url}: sha256 {digest.hexdigest()} does not match the expected {sha256}")
    shutil.move(tmp.name, dest)
    return dest
