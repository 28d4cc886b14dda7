"""Each option is declared once (tabularnet/training/options.py): the LightningModules, the estimators, the
command line and README's reference all list the same options with the same defaults."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields

import pytest

from tabularnet.docs import README, readme_block, yaml_value
from tabularnet.models import MLPClassifier, MLPRegressor, TransformerClassifier, TransformerRegressor
from tabularnet.models.estimators import EstimatorOptions
from tabularnet.models.task_estimators import RegressorOptions
from tabularnet.training.lightning_modules import MLPLightningModule, TransformerLightningModule
from tabularnet.training.options import (
    MLPOptions,
    RecipeOptions,
    TransformerOptions,
    defaults,
    option,
    with_options,
)

PAIRS = [
    (MLPClassifier, MLPLightningModule, MLPOptions),
    (TransformerClassifier, TransformerLightningModule, TransformerOptions),
    (MLPRegressor, MLPLightningModule, MLPOptions),
    (TransformerRegressor, TransformerLightningModule, TransformerOptions),
]
LINKED = {"n_num_features": 3, "cat_cardinalities": [5], "n_classes": 2}


@pytest.mark.parametrize(("estimator", "module", "network_options"), PAIRS)
def test_estimator_module_and_reference_list_the_same_options(estimator, module, network_options):
    shared = defaults(network_options, RecipeOptions)
    params = estimator().get_params()
    hparams = dict(module(**LINKED).hparams)
    for name, default in shared.items():
        assert params[name] == default or list(params[name]) == default, name  # tuples as YAML lists
        assert hparams[name] == default, name
    # nothing else: the estimator adds its own options, the module the linked sizes and compile
    own_options = (EstimatorOptions, RegressorOptions) if estimator.task == "regression" else (EstimatorOptions,)
    assert set(params) == set(shared) | {f.name for c in own_options for f in fields(c)}
    linked = {*LINKED, "classes", "class_counts", "task_type", "target_scaling"}
    assert set(hparams) == set(shared) | linked | {"compile", "_class_path"}
    sections: dict[str, dict[str, str]] = {}
    for section in readme_block(README.read_text()).split("### ")[1:]:
        rows = sections.setdefault(section.splitlines()[0], {})
        for line in section.splitlines():
            if line.startswith("| `"):
                rows.setdefault(line.split("|")[1].strip(), line)  # the options table comes first
    network = next(rows for heading, rows in sections.items() if module.__name__ in heading)
    recipe = next(rows for heading, rows in sections.items() if heading.startswith("The training recipe"))
    own = next(rows for heading, rows in sections.items() if heading.startswith("Estimators"))
    for rows, option_class in ((network, network_options), (recipe, RecipeOptions), (own, EstimatorOptions)):
        for f in fields(option_class):
            assert f"`{yaml_value(f.default)}`" in rows[f"`{f.name}`"], f.name


def test_the_command_line_reads_the_declaration(capsys):
    from tabularnet.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "tabularnet.MLPLightningModule"])
    help_text = " ".join(capsys.readouterr().out.split())
    for f in fields(MLPOptions):
        assert f"--model.{f.name}" in help_text and " ".join(f.metadata["doc"].split()) in help_text, f.name


def test_signature_and_errors_come_from_the_declaration():
    assert list(inspect.signature(MLPClassifier).parameters)[:2] == ["hidden_dims", "activation"]
    assert MLPClassifier([8]).hidden_dims == [8]  # positional, as before
    with pytest.raises(TypeError, match="hiden_dims"):
        MLPClassifier(hiden_dims=[8])
    assert "frequency_scale: PLR frequency initialisation scale." in MLPClassifier.__doc__
    assert "frequency_scale: PLR frequency initialisation scale." in MLPLightningModule.__doc__


def test_an_option_declared_twice_is_an_error():
    @dataclass
    class Other:
        dropout: float = option(0.5, "again")

    with pytest.raises(TypeError, match="dropout"):
        with_options(MLPOptions, Other)
