"""Column-role inference and input validation in tabularnet.data.schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabularnet.data.schema import (
    DEFAULT_NA_VALUES,
    MAX_INT_CATEGORIES,
    DataError,
    DataWarning,
    Schema,
    check_numeric,
    check_target,
    drop_missing_targets,
    infer_schema,
    mark_missing,
)


def mixed_table(n_rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n_rows),  # float -> numeric
            "color": rng.choice(["red", "green", "blue"], n_rows),  # string -> categorical
            "flag": rng.integers(0, 2, n_rows),  # few distinct ints -> categorical
            "count": np.arange(n_rows),  # many distinct ints -> numeric
            "member": rng.random(n_rows) < 0.5,  # bool -> categorical
            "target": rng.choice(["a", "b"], n_rows),
        }
    )


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_infer_schema_roles_in_table_order():
    schema = infer_schema(mixed_table(), target="target")
    assert schema.numeric == ["height", "count"]
    assert schema.categorical == ["color", "flag", "member"]
    assert schema.target == "target"
    assert schema.features == ["height", "count", "color", "flag", "member"]
    assert "target" not in schema.features


def test_integer_threshold_for_categorical():
    at_limit = pd.DataFrame({"a": np.arange(MAX_INT_CATEGORIES) % MAX_INT_CATEGORIES, "t": [0, 1] * 5})
    over = pd.DataFrame({"a": np.arange(MAX_INT_CATEGORIES + 1), "t": [0, 1] * 5 + [0]})
    assert infer_schema(at_limit, target="t").categorical == ["a"]
    assert infer_schema(over, target="t").numeric == ["a"]


def test_forced_roles_override_inference():
    df = mixed_table()
    schema = infer_schema(df, target="target", categorical=["count"], numeric=["flag"])
    assert "count" in schema.categorical and "count" not in schema.numeric
    assert "flag" in schema.numeric and "flag" not in schema.categorical
    assert schema.numeric == ["height", "flag"]  # still in table order


def test_no_target_uses_every_column():
    df = mixed_table().drop(columns="target")
    schema = infer_schema(df, target=None)
    assert schema.target is None
    assert sorted(schema.features) == sorted(df.columns)


def test_schema_dict_round_trip():
    schema = infer_schema(mixed_table(), target="target")
    state = schema.to_dict()
    assert state == {"numeric": schema.numeric, "categorical": schema.categorical, "target": "target", "dropped": []}
    assert Schema.from_dict(state) == schema
    state["numeric"].append("other")  # to_dict copies the lists
    assert "other" not in schema.numeric


def test_missing_target_column_names_it_and_source():
    with pytest.raises(DataError, match=r"my\.csv: target column 'label' not found") as err:
        infer_schema(mixed_table(), target="label", source="my.csv")
    assert "'height'" in str(err.value)  # lists the available columns


@pytest.mark.parametrize("option", ["categorical", "numeric"])
def test_missing_forced_column(option):
    with pytest.raises(DataError, match=f"{option} column 'nope' not found"):
        infer_schema(mixed_table(), target="target", **{option: ["nope"]})


def test_column_declared_both_ways():
    with pytest.raises(DataError, match="'height' declared both numeric and categorical"):
        infer_schema(mixed_table(), target="target", categorical=["height"], numeric=["height"])


def test_duplicate_columns():
    df = pd.DataFrame([[1.0, 2.0, 0]], columns=["a", "a", "t"])
    with pytest.raises(DataError, match="duplicate column names: 'a'"):
        infer_schema(df, target="t")


def test_only_target_column():
    with pytest.raises(DataError, match="no feature columns besides the target 't'"):
        infer_schema(pd.DataFrame({"t": [0, 1]}), target="t")


def test_forced_numeric_with_text_values():
    df = pd.DataFrame({"a": ["1.5", "2", "oops", "x"], "t": [0, 1, 0, 1]})
    with pytest.raises(DataError, match=r"train: column 'a' has non-numeric values \(first: 'oops' at row 2\)"):
        infer_schema(df, target="t", numeric=["a"], source="train")


def test_check_numeric_converts_to_float64_keeping_missing():
    values = check_numeric(pd.Series(["1.5", None, "2"]), name="a", source="s")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [1.5, np.nan, 2.0])
    ints = check_numeric(pd.Series([1, None], dtype="Int64"), name="a", source="s")
    np.testing.assert_array_equal(ints, [1.0, np.nan])


def test_check_numeric_bool():
    values = check_numeric(pd.Series([True, False, True]), name="b", source="s")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [1.0, 0.0, 1.0])


def test_check_numeric_reports_position_not_index_label():
    series = pd.Series([1.0, "bad"], index=[10, 20])
    with pytest.raises(DataError, match=r"'bad' at row 1\)"):
        check_numeric(series, name="a", source="s")


@pytest.mark.parametrize("bad", [np.inf, -np.inf, "inf"])
def test_check_numeric_rejects_infinity(bad):
    with pytest.raises(DataError, match="s: column 'a' has an infinite value at row 2"):
        check_numeric(pd.Series([0.0, 1.0, bad, 3.0], dtype=object), name="a", source="s")


def test_check_target_accepts_valid_labels():
    y = pd.Series(["a", "b", "a"], name="y")
    assert check_target(y, source="s") is y


def test_check_target_missing_labels():
    y = pd.Series(["a", None, "b", None], name="y")
    with pytest.raises(DataError, match=r"s: target column 'y' has 2 missing labels \(first at row 1\)"):
        check_target(y, source="s")


def test_check_target_single_class():
    with pytest.raises(DataError, match=r"s: target column 'y' has .*'a'.*need at least two"):
        check_target(pd.Series(["a", "a"], name="y"), source="s")


# ---------------------------------------------------------------------------------------------- messy tables
def test_mark_missing_tokens_and_numbers_stored_as_text():
    df = pd.DataFrame(
        {
            "age": ["31", " ? ", "n/a", "40.5"],  # numbers as text with missing tokens -> float
            "city": ["Paris", "NA", "Oslo", "?"],  # text stays text, tokens become NaN
            "code": [1, 2, 3, 4],
        }
    )
    out = mark_missing(df, DEFAULT_NA_VALUES, source="s")
    assert out["age"].dtype == np.float64
    np.testing.assert_array_equal(out["age"], [31.0, np.nan, np.nan, 40.5])
    assert out["city"].isna().tolist() == [False, True, False, True] and out["city"].iloc[0] == "Paris"
    assert out["code"].tolist() == [1, 2, 3, 4]
    assert df["age"].iloc[1] == " ? "  # the input is not modified
    assert mark_missing(df, [], source="s") is df  # no tokens: nothing changes


def test_mark_missing_infers_python_numbers_in_object_columns():
    df = pd.DataFrame({"x": pd.Series([1.5, 2.0, None], dtype=object)})
    assert mark_missing(df, DEFAULT_NA_VALUES)["x"].dtype == np.float64


def test_stray_text_in_a_numeric_looking_column():
    values = [str(v) for v in range(30)] + ["unknown"] + [str(v) for v in range(9)]
    df = pd.DataFrame({"n": values, "t": [0, 1] * 20})
    with pytest.raises(DataError, match=r"f\.csv: column 'n' has non-numeric values \(first: 'unknown' at row 30\)"):
        infer_schema(df, target="t", source="f.csv")
    assert infer_schema(df, target="t", categorical=["n"]).categorical == ["n"]  # declared: fine
    mostly_text = pd.DataFrame({"ticket": ["A/5 1", "PC 17", "113803", "STON 2"] * 10, "t": [0, 1] * 20})
    assert infer_schema(mostly_text, target="t").categorical == ["ticket"]


def test_all_missing_column_is_dropped_with_a_warning():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "empty": [np.nan] * 3, "t": [0, 1, 0]})
    with pytest.warns(DataWarning, match="s: column 'empty' has no values"):
        schema = infer_schema(df, target="t", source="s")
    assert schema.features == ["a"] and schema.dropped == ["empty"]


def test_inferred_numeric_column_with_infinity():
    df = pd.DataFrame({"a": [1.0, -np.inf, 3.0], "t": [0, 1, 0]})
    with pytest.raises(DataError, match="s: column 'a' has an infinite value at row 1"):
        infer_schema(df, target="t", source="s")


def test_drop_missing_targets():
    df = pd.DataFrame({"a": [1, 2, 3, 4], "t": ["x", None, "y", np.nan]})
    with pytest.warns(DataWarning, match=r"s: dropped 2 rows whose target 't' is missing \(first at row 1\)"):
        kept = drop_missing_targets(df, "t", source="s")
    assert kept["a"].tolist() == [1, 3]
    assert drop_missing_targets(df.iloc[[0, 2]], "t", source="s") is not None
    with pytest.raises(DataError, match=r"s: target column 't' has no labels \(all 2 are missing\)"):
        drop_missing_targets(df.iloc[[1, 3]], "t", source="s")


def test_check_target_empty_table():
    with pytest.raises(DataError, match="s: the table has no rows"):
        check_target(pd.Series([], name="y", dtype=object), source="s")
