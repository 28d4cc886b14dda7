"""README's configuration reference is the one generated from the code."""

from __future__ import annotations

from typing import Literal, Optional

from tabularnet import docs


def test_readme_reference_equals_the_generated_one():
    block = docs.readme_block(docs.README.read_text(encoding="utf-8"))
    assert block == docs.config_reference(), "README.md's configuration reference is out of date: run `make docs`"


def test_reference_lists_every_constructor_option():
    reference = docs.config_reference()
    for option in ("`dataset`", "`scaling`", "`hidden_dims`", "`d_model`", "`calibrate`", "`distillation`"):
        assert f"| {option} |" in reference


def test_type_names():
    assert docs.type_name(Optional[list[str]]) == "list[str] \\| null"
    assert docs.type_name(Literal["a", "b"]) == "a \\| b"
    assert docs.type_name(int) == "int"


def test_write_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{docs.START}\nold text\n{docs.END}\nafter\n")
    assert docs.write_readme(readme)
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{docs.END}\nafter\n")
    assert docs.readme_block(text) == docs.config_reference()
    assert not docs.write_readme(readme)  # idempotent
