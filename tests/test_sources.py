"""Reading and writing tables, named datasets, and downloads from a local (127.0.0.1) mirror."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tabularnet.data.sources as sources
from tabularnet.data.schema import DataError
from tabularnet.data.sources import DatasetInfo, dataset_files, default_data_dir, read_table, write_table

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TINY_CSV = b"a,b,target\n1,x,0\n2,y,1\n3,,0\n"


def small_frame(n_rows: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n_rows).round(6),
            "cat": rng.choice(["a", "b", "NA"], n_rows),
            "y": rng.integers(0, 2, n_rows),
        }
    )


def test_read_csv_keeps_na_string_and_empty_is_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,c\n1.5,NA\n,None\n3,\n")
    df = read_table(path)
    assert list(df.columns) == ["x", "c"]
    assert df["c"].iloc[0] == "NA" and df["c"].iloc[1] == "None"
    assert pd.isna(df["c"].iloc[2]) and pd.isna(df["x"].iloc[1])
    np.testing.assert_allclose(df["x"].iloc[[0, 2]], [1.5, 3.0])


def test_read_csv_gz_and_tsv(tmp_path):
    gz = tmp_path / "t.CSV.GZ"  # suffix check is case-insensitive
    gz.write_bytes(gzip.compress(TINY_CSV))
    tsv = tmp_path / "t.tsv"
    tsv.write_text(TINY_CSV.decode().replace(",", "\t"))
    for path in (gz, tsv, str(gz)):
        df = read_table(path)
        assert list(df.columns) == ["a", "b", "target"]
        assert df["a"].tolist() == [1, 2, 3]


def test_read_parquet(tmp_path):
    df = small_frame()
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_table(path), df, check_dtype=False)


def test_dataframe_passthrough_and_ndarray():
    df = small_frame()
    assert read_table(df) is df
    array = np.arange(12.0).reshape(4, 3)
    out = read_table(array)
    assert list(out.columns) == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(out.to_numpy(), array)


@pytest.mark.parametrize("name", ["empty.csv", "empty.csv.gz", "empty.parquet"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_parquet_without_columns(tmp_path):
    path = tmp_path / "none.parquet"
    pd.DataFrame().to_parquet(path)
    with pytest.raises(DataError, match="has no columns") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_unknown_extension(tmp_path):
    path = tmp_path / "table.xlsx"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="unknown file format") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match="cannot read the file") as err:
        read_table(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["sub/dir/out.csv", "sub/out.parquet"])
def test_write_table_round_trip(tmp_path, name):
    df = small_frame()
    path = tmp_path / name
    write_table(df, path)  # creates the parent folders
    if name.endswith(".parquet"):
        assert path.read_bytes()[:4] == b"PAR1"
    else:
        assert path.read_text().splitlines()[0] == "num,cat,y"  # no index column
    pd.testing.assert_frame_equal(read_table(path), df, check_dtype=False)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv(sources.DATA_DIR_ENV)
    if SHARED_DATASETS.is_dir():
        monkeypatch.chdir(tmp_path)  # falls back to ../shared/datasets beside the package checkout
        assert default_data_dir().resolve() == SHARED_DATASETS.resolve()


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")
def test_dataset_files_adult(monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(SHARED_DATASETS))
    monkeypatch.delenv(sources.DATA_URL_ENV, raising=False)
    paths = dataset_files("adult")
    assert set(paths) == {"train", "test"}
    assert paths["train"] == SHARED_DATASETS / "adult" / "train.csv.gz"
    assert paths["test"] == SHARED_DATASETS / "adult" / "test.csv"
    for split, path in paths.items():
        assert path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sources.DATASETS["adult"].files[split][1]
    assert sources.DATASETS["adult"].target in pd.read_csv(paths["test"], nrows=2).columns


def test_unknown_dataset():
    with pytest.raises(DataError, match=r"unknown dataset 'nope' \(known: .*adult"):
        dataset_files("nope")


def test_missing_dataset_without_mirror(monkeypatch, tmp_path):
    monkeypatch.delenv(sources.DATA_URL_ENV, raising=False)
    with pytest.raises(DataError, match="not found; set TABULARNET_DATA_DIR") as err:
        dataset_files("adult", data_dir=tmp_path)
    assert str(tmp_path / "adult" / "train.csv.gz") in str(err.value)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP mirror on 127.0.0.1 serving ``<root>/<name>/<file>``; yields the served root folder."""
    root = tmp_path / "mirror"
    root.mkdir()
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv(sources.DATA_URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(data_dir))
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fake_dataset(monkeypatch, sha256: str) -> None:
    info = DatasetInfo("tiny", {"train": ("data.csv", sha256)}, target="target")
    monkeypatch.setattr(sources, "DATASETS", {"tiny": info})


def test_download_from_mirror(mirror, monkeypatch, tmp_path):
    (mirror / "tiny").mkdir()
    (mirror / "tiny" / "data.csv").write_bytes(TINY_CSV)
    fake_dataset(monkeypatch, hashlib.sha256(TINY_CSV).hexdigest())
    paths = dataset_files("tiny")
    assert paths == {"train": tmp_path / "data" / "tiny" / "data.csv"}
    assert paths["train"].read_bytes() == TINY_CSV
    assert sorted(p.name for p in paths["train"].parent.iterdir()) == ["data.csv"]  # no temp file left
    (mirror / "tiny" / "data.csv").unlink()  # the local copy is used from now on
    assert dataset_files("tiny")["train"].read_bytes() == TINY_CSV
    assert read_table(paths["train"])["b"].tolist()[:2] == ["x", "y"]


def test_download_wrong_sha256_leaves_nothing(mirror, monkeypatch, tmp_path):
    (mirror / "tiny").mkdir()
    (mirror / "tiny" / "data.csv").write_bytes(TINY_CSV)
    fake_dataset(monkeypatch, "0" * 64)
    with pytest.raises(DataError, match="sha256 .* does not match the expected 0{64}"):
        dataset_files("tiny")
    folder = tmp_path / "data" / "tiny"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_missing_on_mirror(mirror, monkeypatch, tmp_path):
    fake_dataset(monkeypatch, hashlib.sha256(TINY_CSV).hexdigest())
    with pytest.raises(DataError, match=r"download of http://127\.0\.0\.1:\d+/tiny/data\.csv failed"):
        dataset_files("tiny")
    folder = tmp_path / "data" / "tiny"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_pyarrow_table_passthrough():
    pa = pytest.importorskip("pyarrow")
    df = pd.DataFrame({"x": [1.5, None], "c": ["a", "b"]})
    out = read_table(pa.Table.from_pandas(df, preserve_index=False))
    assert list(out.columns) == ["x", "c"] and out["x"].isna().tolist() == [False, True]


def test_duplicate_csv_header_is_an_error(tmp_path):
    path = tmp_path / "dupes.csv"
    path.write_text("a,b,a\n1,2,3\n")  # pandas alone would read columns a, b, a.1
    with pytest.raises(DataError, match=r"dupes\.csv: duplicate column names: 'a'"):
        read_table(path)
