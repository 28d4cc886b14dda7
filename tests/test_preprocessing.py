"""The Preprocessor: scaling, imputation, categorical ids, labels and checkpoint-safe state."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tabularnet
from tabularnet.data.preprocessing import MISSING_ID, N_RESERVED, UNKNOWN_ID, Preprocessor, category_strings
from tabularnet.data.schema import DataError, DataWarning, infer_schema


def make_table(n_rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n_rows),
            "income": rng.lognormal(10, 1, n_rows),
            "color": rng.choice(["red", "green", "blue"], n_rows),
            "level": rng.integers(0, 4, n_rows),
            "target": rng.choice(["no", "yes"], n_rows),
        }
    )
    df.loc[rng.random(n_rows) < 0.1, "income"] = np.nan
    df.loc[rng.random(n_rows) < 0.1, "color"] = None
    return df


def fitted(scaling: str = "standard", df: pd.DataFrame | None = None) -> tuple[Preprocessor, pd.DataFrame]:
    df = make_table() if df is None else df
    return Preprocessor(scaling).fit(df, infer_schema(df, target="target")), df


def test_unknown_scaling_rejected():
    with pytest.raises(DataError, match="scaling must be"):
        Preprocessor("minmax")


def test_not_fitted_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor().transform(make_table())


def test_shapes_and_metadata():
    prep, df = fitted()
    out = prep.transform(df)
    # age, income + income's missing indicator (age has no missing values -> no indicator)
    assert prep.n_num_features == 3
    assert out["x_num"].shape == (len(df), 3) and out["x_num"].dtype == torch.float32
    assert out["x_cat"].shape == (len(df), 2) and out["x_cat"].dtype == torch.int64
    assert prep.cat_cardinalities == [3 + 2, 4 + 2]  # color, level: categories + missing + unknown
    assert prep.schema.numeric == ["age", "income"]


def test_standard_scaling_uses_train_statistics_only():
    prep, train = fitted("standard")
    x = prep.transform(train)["x_num"].numpy().astype(np.float64)
    np.testing.assert_allclose(x[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, :2].std(axis=0), 1.0, atol=1e-4)
    shifted = train.assign(age=train["age"] + 100.0)
    x_shifted = prep.transform(shifted)["x_num"].numpy()
    expected = (shifted["age"] - train["age"].mean()) / train["age"].std(ddof=0)
    np.testing.assert_allclose(x_shifted[:, 0], expected, rtol=1e-5)
    assert x_shifted[:, 0].mean() > 5  # not re-standardized on the new table


def test_missing_numeric_median_and_indicator():
    prep, train = fitted("none")
    median = float(train["income"].median())
    test = pd.DataFrame({"age": [1.0, np.nan], "income": [np.nan, 5.0], "color": ["red", "red"], "level": [0, 1]})
    x = prep.transform(test)["x_num"].numpy()
    np.testing.assert_allclose(x[:, 1], [median, 5.0], rtol=1e-6)
    np.testing.assert_array_equal(x[:, 2], [1.0, 0.0])  # income's indicator
    # age had no missing values in training: imputed with its median, but no indicator column
    np.testing.assert_allclose(x[1, 0], float(train["age"].median()), rtol=1e-6)
    assert x.shape[1] == 3


def test_no_scaling_is_identity_on_observed_values():
    prep, train = fitted("none")
    x = prep.transform(train)["x_num"].numpy()
    np.testing.assert_allclose(x[:, 0], train["age"], rtol=1e-6)


def test_quantile_scaling_is_monotone_and_gaussian():
    prep, train = fitted("quantile")
    x = prep.transform(train)["x_num"].numpy()[:, 0]
    order = np.argsort(train["age"].to_numpy())
    assert np.all(np.diff(x[order]) >= 0)
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1.0) < 0.1
    far = prep.transform(train.head(2).assign(age=[-1e6, 1e6]))["x_num"].numpy()[:, 0]
    assert far[0] < -3 and far[1] > 3 and np.isfinite(far).all()


def test_quantile_handles_repeated_values():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": np.r_[np.zeros(100), rng.normal(5, 1, 50)], "target": [0, 1] * 75})
    prep, _ = fitted("quantile", df)
    x = prep.transform(pd.DataFrame({"a": [0.0, 5.0]}))["x_num"].numpy()[:, 0]
    # zeros fill the lowest 2/3 of the distribution: their mid-rank is 1/3, i.e. the normal's 1/3-quantile
    assert x[0] == pytest.approx(-0.4307, abs=0.02)
    assert x[1] > x[0]


def test_categorical_ids_missing_unknown_known():
    prep, _ = fitted()
    assert prep.state["categorical"]["color"] == ["blue", "green", "red"]
    test = pd.DataFrame({"age": 1.0, "income": 1.0, "color": [None, "purple", "blue", "green", "red"], "level": 0})
    codes = prep.transform(test)["x_cat"][:, 0].tolist()
    assert codes == [MISSING_ID, UNKNOWN_ID, 2, 3, 4]
    assert (MISSING_ID, UNKNOWN_ID) == (0, 1)


def test_category_ids_stable_across_int_float_and_string():
    prep, train = fitted()
    expected = prep.transform(train)["x_cat"][:, 1]
    as_float = train.assign(level=train["level"].astype(float))
    as_text = train.assign(level=train["level"].astype(str))
    assert torch.equal(prep.transform(as_float)["x_cat"][:, 1], expected)
    assert torch.equal(prep.transform(as_text)["x_cat"][:, 1], expected)
    assert expected.min() >= 2  # all training categories are known


def test_category_strings():
    assert category_strings(pd.Series([3, 4])).tolist() == ["3", "4"]
    assert category_strings(pd.Series([3.0, 2.5])).tolist() == ["3", "2.5"]
    assert category_strings(pd.Series(["3", "x"])).tolist() == ["3", "x"]
    assert category_strings(pd.Series([True, False])).tolist() == ["True", "False"]
    out = category_strings(pd.Series([1.0, np.nan], index=[5, 7]))
    assert out.index.tolist() == [5, 7] and out[5] == "1" and pd.isna(out[7])
    assert pd.isna(category_strings(pd.Series(["a", None]))[1])


def test_category_strings_object_column_with_float():
    assert category_strings(pd.Series(["a", 3.0], dtype=object)).tolist() == ["a", "3"]


def test_category_strings_float32_matches_float64():
    values = [0.1, 2.0]
    single = category_strings(pd.Series(values, dtype=np.float32)).tolist()
    assert single == category_strings(pd.Series(values, dtype=np.float64)).tolist()


def test_labels_encode_decode():
    prep, train = fitted()
    assert prep.classes == ["no", "yes"]
    codes = prep.encode_labels(train["target"])
    assert codes.dtype == torch.int64
    assert codes.tolist() == (train["target"] == "yes").astype(int).tolist()
    assert prep.decode_labels(codes).tolist() == train["target"].tolist()
    assert prep.decode_labels(torch.tensor([1, 0])).tolist() == ["yes", "no"]


def test_integer_labels_and_explicit_classes():
    df = make_table().assign(target=lambda d: (d["age"] > 40).astype(int))
    prep = Preprocessor().fit(df, infer_schema(df, target="target"), classes=np.array([2, 1, 0]))
    assert prep.classes == [2, 1, 0] and all(type(c) is int for c in prep.classes)
    assert prep.encode_labels(np.array([0, 1, 2])).tolist() == [2, 1, 0]


def test_unseen_label_raises():
    prep, _ = fitted()
    with pytest.raises(
        DataError, match=r"test\.csv: label 'maybe' was not seen in training \(classes: \['no', 'yes'\]\)"
    ):
        prep.encode_labels(pd.Series(["no", "maybe", "yes"]), source="test.csv")


def test_fit_without_target_has_no_classes():
    df = make_table().drop(columns="target")
    prep = Preprocessor().fit(df, infer_schema(df, target=None))
    with pytest.raises(DataError, match="without a target column"):
        _ = prep.classes
    assert prep.transform(df)["x_num"].shape[0] == len(df)


def test_missing_feature_column_at_transform():
    prep, train = fitted()
    with pytest.raises(DataError, match="predict.csv: feature column 'color' not found"):
        prep.transform(train.drop(columns="color"), source="predict.csv")


def plain_types_only(value) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and plain_types_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_types_only(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


@pytest.mark.parametrize("scaling", ["standard", "quantile", "none"])
def test_state_dict_round_trip_through_torch_save(scaling):
    prep, train = fitted(scaling)
    state = prep.state_dict()
    assert plain_types_only(state)
    buffer = io.BytesIO()
    torch.save({"preprocessing": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["preprocessing"]
    assert loaded == state
    restored = Preprocessor("none").load_state_dict(loaded)  # the state's scaling wins
    assert restored.scaling == scaling
    test = make_table(50, seed=3)
    for name, tensor in prep.transform(test).items():
        assert torch.equal(restored.transform(test)[name], tensor), name
    assert restored.classes == prep.classes and restored.cat_cardinalities == prep.cat_cardinalities
    assert torch.equal(restored.encode_labels(test["target"]), prep.encode_labels(test["target"]))


# ------------------------------------------------------------------------ rare and high-cardinality categories
def names_table(n_rows: int = 120) -> pd.DataFrame:
    df = make_table(n_rows, seed=2)
    df["name"] = [f"person {i}" for i in range(n_rows)]  # one value per row, like Titanic's Name
    df["city"] = ["rome"] * (n_rows - 3) + ["oslo", "oslo", "lima"]  # two rare cities
    return df


def fit_names(**options) -> tuple[Preprocessor, pd.DataFrame]:
    df = names_table()
    return Preprocessor(**options).fit(df, infer_schema(df, target="target")), df


def test_min_frequency_sends_rare_categories_to_unknown():
    prep, df = fit_names(min_frequency=3, high_cardinality="keep", max_categories=1000)
    assert prep.state["categorical"]["city"] == ["rome"]
    city = prep.schema.categorical.index("city")
    codes = prep.transform(df)["x_cat"][:, city]
    assert codes[:-3].eq(N_RESERVED).all() and codes[-3:].eq(UNKNOWN_ID).all()
    assert prep.cat_cardinalities[city] == 1 + N_RESERVED


def test_high_cardinality_drop_warns_and_ignores_the_column_later():
    with pytest.warns(DataWarning, match=r"column 'name' has 120 distinct values \(more than max_categories=50\)"):
        prep, df = fit_names(max_categories=50)
    assert "name" not in prep.schema.features and prep.schema.dropped == ["name"]
    assert prep.transform(df.drop(columns="name"))["x_cat"].shape[1] == len(prep.schema.categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dropped column present at predict time is expected, not "extra"
        prep.transform(df)


def test_high_cardinality_hash_is_deterministic_across_processes():
    prep, df = fit_names(max_categories=16, high_cardinality="hash")
    assert prep.state["hashed"] == {"name": 16}
    name = prep.schema.categorical.index("name")
    assert prep.cat_cardinalities[name] == 16 + N_RESERVED
    codes = prep.transform(df)["x_cat"][:, name]
    assert codes.min() >= N_RESERVED and codes.max() < 16 + N_RESERVED and len(codes.unique()) > 8
    script = (
        "import pandas as pd; from tabularnet.data.preprocessing import hash_codes; "
        "print(hash_codes(pd.Series([f'person {i}' for i in range(120)]), 16).tolist())"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(tabularnet.__file__).parents[1])}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert json.loads(out.stdout) == codes.tolist()
    missing = prep.transform(df.assign(name=None))["x_cat"][:, name]
    assert missing.eq(MISSING_ID).all()


def test_hashed_state_is_plain_data():
    prep, _ = fit_names(max_categories=16, high_cardinality="hash")
    assert plain_types_only(prep.state_dict())
    assert prep.class_counts == [int((names_table()["target"] == c).sum()) for c in prep.classes]


def test_extra_columns_at_transform_are_ignored_with_a_warning():
    prep, train = fitted()
    with pytest.warns(DataWarning, match=r"new\.csv: ignoring column\(s\) not seen in training: 'notes'"):
        out = prep.transform(train.assign(notes="x"), source="new.csv")
    assert torch.equal(out["x_num"], prep.transform(train)["x_num"])


@pytest.mark.parametrize(
    ("option", "value"), [("high_cardinality", "ignore"), ("max_categories", 0), ("min_frequency", 0)]
)
def test_bad_category_options(option, value):
    with pytest.raises(DataError, match=f"{option} must be"):
        Preprocessor(**{option: value})


def test_only_the_data_module_key_holds_the_preprocessing():
    """Nothing writes a "datamodule" key (Lightning and save() write TabularDataModule): it is not read either."""
    from tabularnet.data.checkpoint import DATAMODULE_KEY, _datamodule_state

    state = {"preprocessing": {"scaling": "standard"}}
    assert _datamodule_state({DATAMODULE_KEY: state}, "model.ckpt") is state
    with pytest.raises(DataError, match="model.ckpt: the checkpoint holds no tabularnet preprocessing state"):
        _datamodule_state({"datamodule": state}, "model.ckpt")


def test_a_fitted_state_has_every_key_transform_reads(table):
    """The state is read as written (no defaults for keys of older versions): every key is there."""
    schema = infer_schema(table, target="target")
    state = Preprocessor().fit(table, schema).state_dict()
    keys = {"scaling", "na_values", "schema", "numeric", "categorical", "hashed", "classes", "class_counts"}
    assert keys <= set(state)


@pytest.mark.parametrize(
    ("part", "named"),
    [("temperature", "temperature"), ("_class_path", "_class_path"), ("TabularDataModule", "preprocessing")],
)
def test_a_model_checkpoint_missing_a_part_is_refused_naming_it(table_files, tmp_path, capsys, part, named):
    """No defaults for what older versions did not write: predict and load() refuse, in one line, naming it."""
    from tabularnet.cli import main
    from tabularnet.models import MLPClassifier

    df = pd.read_csv(table_files["train"])
    model = MLPClassifier(hidden_dims=[4], training={"epochs": 1}).fit(df.drop(columns="target"), df["target"])
    model.save(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=True)
    section = {"temperature": "state_dict", "_class_path": "hyper_parameters"}.get(part)
    del (checkpoint[section] if section else checkpoint)[part]
    torch.save(checkpoint, tmp_path / "partial.ckpt")
    with pytest.raises(DataError, match=f"not a tabularnet model checkpoint: it has no .*{named}"):
        MLPClassifier.load(tmp_path / "partial.ckpt")
    with pytest.raises(SystemExit):
        main(["predict", f"--ckpt_path={tmp_path / 'partial.ckpt'}", f"--data.predict_path={table_files['predict']}"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
