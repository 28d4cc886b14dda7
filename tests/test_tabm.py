"""TabM ensembles (the MLP family with ``k > 1``): shapes, k = 1 is the plain MLP, the mean of the members' losses,
averaged probabilities, checkpoints, `tabularnet predict`, ONNX, the estimator, errors. The two drivers' equality at
k = 4 is in tests/test_trainers.py (``tabm``, ``tabm_mini_plr``); ONNX parity through the CLI in tests/test_serving.py
(``mlp_tabm``, ``mlp_tabm_mini``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table

from tabularnet.cli import main
from tabularnet.data.checkpoint import load_checkpoint
from tabularnet.data.preprocessing import Preprocessor
from tabularnet.models import MLPClassifier
from tabularnet.nn import MLP
from tabularnet.nn.ensemble import LinearBatchEnsemble, LinearEnsemble, ScaleEnsemble
from tabularnet.training.calibration import calibrated_probabilities, fit_temperature
from tabularnet.training.config import Recipe
from tabularnet.training.ensemble import (
    mean_log_probabilities,
    mean_probabilities,
    member_permutation,
    member_rows,
    repeat_rows,
)
from tabularnet.training.lightning_modules import MLPLightningModule
from tabularnet.training.objectives import AugmentationRNG, evaluation_sums, training_loss
from tabularnet.training.optim import decayed_parameter_names

SIZES = dict(n_num_features=3, cat_cardinalities=[4, 5], d_out=3)


def inputs(rows: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 3, generator=generator), torch.randint(0, 4, (rows, 2), generator=generator)


# ------------------------------------------------------------------------------------------------------ network
@pytest.mark.parametrize("ensemble", ["tabm", "mini"])
@pytest.mark.parametrize("num_embedding", ["none", "linear", "plr", "ple"])
@pytest.mark.parametrize(("activation", "norm"), [("relu", "none"), ("geglu", "layer"), ("reglu", "batch")])
def test_members_output_one_row_of_logits_each(ensemble, num_embedding, activation, norm):
    net = MLP(
        **SIZES, hidden_dims=[8, 6], k=4, ensemble=ensemble, num_embedding=num_embedding, d_num_embedding=4,
        activation=activation, norm=norm, dropout=0.1,
    )  # fmt: skip
    logits = net(*inputs())
    assert logits.shape == (6, 4, 3)
    assert (logits[:, 0] - logits[:, 1]).abs().max() > 1e-4  # the members differ from the start
    net.eval()
    assert net(*inputs(1)).shape == (1, 4, 3)
    adapters = [m for m in net.modules() if isinstance(m, (ScaleEnsemble, LinearBatchEnsemble))]
    assert len(adapters) == (1 if ensemble == "mini" else 2)
    assert isinstance(net.head, LinearEnsemble)


def test_tabm_initialisation():
    torch.manual_seed(0)
    net = MLP(**SIZES, hidden_dims=[8, 8], k=5, d_cat_embedding=2)
    first, second = net.blocks[0], net.blocks[3]
    assert set(first.r.detach().unique().tolist()) <= {-1.0, 1.0}  # random signs ...
    r = first.r.detach()
    assert torch.equal(r[:, 3], r[:, 4]) and torch.equal(r[:, 5], r[:, 6])  # ... one per feature (2-wide embeddings)
    assert torch.equal(second.r, torch.ones_like(second.r)) and torch.equal(first.s, torch.ones_like(first.s))
    assert torch.equal(first.bias, first.bias[:1].expand_as(first.bias))  # every member starts from the same bias
    torch.manual_seed(0)
    plr = MLP(**SIZES, hidden_dims=[8], k=5, num_embedding="plr")
    assert len(plr.blocks[0].r.detach().unique()) > 2  # N(0, 1) with numeric embeddings, as the paper


def test_no_weight_decay_on_adapters_and_biases():
    decayed, rest = decayed_parameter_names(MLP(**SIZES, hidden_dims=[8], k=4))
    assert decayed == ["blocks.0.weight", "head.weight"]
    assert {"blocks.0.r", "blocks.0.s", "blocks.0.bias", "head.bias"} <= set(rest)
    decayed, rest = decayed_parameter_names(MLP(**SIZES, hidden_dims=[8], k=4, ensemble="mini"))
    assert "adapter.weight" in rest and "adapter.weight" not in decayed


@pytest.mark.parametrize("num_embedding", ["none", "plr"])
def test_k1_is_the_plain_mlp(num_embedding):
    options = dict(**SIZES, hidden_dims=[8, 6], dropout=0.0, num_embedding=num_embedding)
    torch.manual_seed(3)
    plain = MLP(**options)
    for ensemble in ("tabm", "mini"):
        torch.manual_seed(3)
        single = MLP(**options, k=1, ensemble=ensemble)
        assert list(single.state_dict()) == list(plain.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(single.state_dict().values(), plain.state_dict().values()))
        assert torch.equal(single(*inputs()), plain(*inputs()))
        assert isinstance(single.head, torch.nn.Linear)


def test_k_errors_name_the_option():
    for k in (0, -2):
        with pytest.raises(ValueError, match=rf"^k \(ensemble members\) must be a positive integer, however: k={k}$"):
            MLP(**SIZES, hidden_dims=[4], k=k)
    with pytest.raises(ValueError, match=r"^ensemble must be 'tabm' or 'mini', however: ensemble='packed'$"):
        MLP(**SIZES, hidden_dims=[4], k=4, ensemble="packed")
    X, y = make_table(60).pipe(lambda df: (df.drop(columns="target"), df["target"]))
    with pytest.raises(ValueError, match=r"k=0"):
        MLPClassifier(hidden_dims=[4], k=0, training={"epochs": 1}).fit(X, y)


def test_k_error_on_the_command_line(tmp_path, capsys):
    make_table(60).to_csv(tmp_path / "train.csv", index=False)
    args = ["fit", "--model=tabularnet.MLPLightningModule", f"--data.train_path={tmp_path / 'train.csv'}"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model.k=0", f"--trainer.default_root_dir={tmp_path}"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tabularnet: error: ")]
    assert errors == ["tabularnet: error: k (ensemble members) must be a positive integer, however: k=0"]


# ---------------------------------------------------------------------------------------------------- objective
def test_member_rows_and_pairing():
    logits = torch.arange(24.0).view(4, 3, 2)  # (B=4, k=3, C=2)
    rows, y = member_rows(logits), torch.tensor([0, 1, 1, 0])
    assert torch.equal(rows[7], logits[2, 1])  # member row b k + i
    assert torch.equal(repeat_rows(y, 3), torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]))
    perm = torch.tensor([2, 0, 3, 1])
    paired = member_permutation(perm, 3)
    for b in range(4):
        for i in range(3):
            assert torch.equal(rows[paired[b * 3 + i]], logits[perm[b], i])
    single = logits[:, 0]  # one member: every function is the identity
    assert member_rows(single) is single and repeat_rows(y, 1) is y and member_permutation(perm, 1) is perm


class FixedNetwork:
    """A network whose successive calls return the given outputs (the two views of the consistency term)."""

    def __init__(self, *outputs: torch.Tensor) -> None:
        self.outputs = list(outputs)

    def __call__(self, x_num, x_cat):
        return self.outputs.pop(0)


RECIPE = dict(
    label_smoothing=0.1,
    mixup={"enabled": True, "alpha": 0.4},
    noise={"enabled": True, "std": 0.1},
    distillation={"enabled": True, "lambda": 0.6, "temperature": 2.0, "consistency": 0.3},
    class_weight={"b": 2.5},
    classes=["a", "b", "c"],
)


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_is_the_mean_of_the_members_losses(weighted):
    rows, k = 10, 4
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(2, rows, k, 3, generator=generator).unbind(0)
    x_num, x_cat = inputs(rows)
    batch = {"x_num": x_num, "x_cat": x_cat, "y": torch.randint(0, 3, (rows,), generator=generator)}
    batch["teacher_logits"] = torch.randn(rows, 3, generator=generator)
    if weighted:
        batch["weight"] = torch.rand(rows, generator=generator) * 3
    recipe = Recipe.from_options(RECIPE)
    ensemble = training_loss(FixedNetwork(first, second), batch, recipe, AugmentationRNG(7)).loss
    members = [
        training_loss(FixedNetwork(first[:, i], second[:, i]), batch, recipe, AugmentationRNG(7)).loss for i in range(k)
    ]
    assert ensemble.item() == pytest.approx(torch.stack(members).mean().item(), rel=1e-6)
    assert min(members).item() < ensemble.item() < max(members).item()  # the members' losses do differ


def test_ensemble_training_step_backpropagates_into_every_member():
    torch.manual_seed(0)
    net = MLP(**SIZES, hidden_dims=[8], k=4, dropout=0.1)
    x_num, x_cat = inputs(12)
    batch = {"x_num": x_num, "x_cat": x_cat, "y": torch.randint(0, 3, (12,)), "teacher_logits": torch.randn(12, 3)}
    training_loss(net, batch, Recipe.from_options(RECIPE), AugmentationRNG(0)).loss.backward()
    assert (net.blocks[0].r.grad.abs().sum(1) > 0).all() and (net.head.weight.grad.flatten(1).abs().sum(1) > 0).all()


# --------------------------------------------------------------------------------------------------- prediction
def test_probabilities_are_the_members_mean():
    logits = torch.randn(5, 4, 3, dtype=torch.float64)
    for temperature in (1.0, 0.7, 2.5):
        expected = torch.stack([(logits[:, i] / temperature).softmax(-1) for i in range(4)]).mean(0)
        assert torch.allclose(mean_probabilities(logits, temperature).double(), expected, atol=1e-6)
        assert torch.allclose(calibrated_probabilities(logits, temperature).double(), expected, atol=1e-6)
        assert torch.allclose(mean_log_probabilities(logits, temperature).exp(), expected, atol=1e-12)
    assert torch.equal(calibrated_probabilities(logits[:, 0]), (logits[:, 0].float()).softmax(-1))  # one member
    y = torch.tensor([0, 2, 1, 1, 0])
    loss, correct, count = evaluation_sums(logits.float(), y)
    assert loss == pytest.approx(-expected_log(logits, y), rel=1e-5) and count == 5
    assert correct == float((mean_probabilities(logits).argmax(-1) == y).sum())


def expected_log(logits: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> float:
    return float(mean_probabilities(logits, temperature).double()[torch.arange(len(y)), y].log().sum())


def test_temperature_of_an_ensemble_minimises_the_mean_probabilities_log_loss():
    generator = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (400,), generator=generator)
    logits = 4 * torch.randn(400, 5, 3, generator=generator) + 3 * torch.nn.functional.one_hot(y, 3)[:, None]
    t = fit_temperature(logits, y)
    assert t > 1.1  # overconfident members: softened
    for other in (t * 0.95, t * 1.05):
        assert -expected_log(logits, y, t) < -expected_log(logits, y, other)


# --------------------------------------------------------------------------------- checkpoints, CLI, estimators
@pytest.fixture(scope="module")
def tabm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tabm")
    df = make_table(300, seed=2, n_classes=3)
    paths = {"train": folder / "train.csv", "predict": folder / "predict.csv"}
    df.to_csv(paths["train"], index=False)
    df.drop(columns="target").iloc[:50].to_csv(paths["predict"], index=False)
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[16, 8]",
            "--model.k=4",
            "--model.calibrate=true",
            f"--data.train_path={paths['train']}",
            "--data.val_fraction=0.2",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={folder}",
            "--seed_everything=0",
        ]
    )
    metrics = json.loads((folder / "lightning_logs" / "version_0" / "metrics.json").read_text())
    return metrics, paths, folder


def test_fit_checkpoint_and_predict_from_it(tabm_run):
    metrics, paths, folder = tabm_run
    assert 0 < metrics["val_acc"] <= 1 and math.isfinite(metrics["val_logloss"]) and metrics["temperature"] != 1.0
    checkpoint = load_checkpoint(metrics["best_checkpoint"])
    assert checkpoint["hyper_parameters"]["k"] == 4 and checkpoint["hyper_parameters"]["ensemble"] == "tabm"
    out = folder / "predictions.csv"
    main(["predict", f"--ckpt_path={metrics['best_checkpoint']}", f"--data.predict_path={paths['predict']}",
          f"--predictions_path={out}"])  # fmt: skip
    predicted = pd.read_csv(out).filter(like="proba_").to_numpy()
    # the same probabilities through the other front door: the estimator loaded from the checkpoint
    module = MLPLightningModule.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu").eval()
    assert module.net.k == 4
    estimator_view = MLPClassifier.load(metrics["best_checkpoint"])
    expected = estimator_view.predict_proba(pd.read_csv(paths["predict"]))
    assert np.abs(predicted - expected).max() <= 1e-5
    assert float(checkpoint["state_dict"]["temperature"]) == pytest.approx(metrics["temperature"])


def test_estimator_fit_predict_save_load_export(tmp_path):
    pytest.importorskip("onnxruntime")
    from tabularnet.serving import Predictor

    df = make_table(240, seed=5, n_classes=3)
    X, y = df.drop(columns="target"), df["target"]
    model = MLPClassifier(hidden_dims=[16], k=4, calibrate=True, training={"epochs": 3, "batch_size": 32})
    model.fit(X, y)
    assert model.net_.k == 4 and model.temperature_ != 1.0
    probs = model.predict_proba(X)
    assert probs.shape == (len(X), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # predict_proba is the members' mean of softmax(logits / T)
    batch = Preprocessor().load_state_dict(model.preprocessing_).transform(X, source="X")
    with torch.no_grad():
        members = (model.net_(batch["x_num"], batch["x_cat"]) / model.temperature_).softmax(-1)
    assert members.shape == (len(X), 4, 3)
    assert np.abs(members.mean(1).numpy() - probs).max() <= 1e-6
    model.save(tmp_path / "model.ckpt")
    loaded = MLPClassifier.load(tmp_path / "model.ckpt")
    assert loaded.k == 4 and np.abs(loaded.predict_proba(X) - probs).max() == 0
    predictor = Predictor(model.export_onnx(tmp_path / "model.onnx"))
    assert np.abs(predictor.predict_proba(X) - probs).max() <= 1e-5


def test_estimator_drivers_agree_at_k4():
    df = make_table(200, seed=3)
    X, y = df.drop(columns="target"), df["target"]
    options = dict(
        hidden_dims=[16, 8], k=4, label_smoothing=0.1, mixup={"enabled": True, "alpha": 0.2},
        training={"batch_size": 32, "epochs": 2}, random_seed=5,
    )  # fmt: skip
    probs = [MLPClassifier(**options, use_lightning=flag).fit(X, y).predict_proba(X) for flag in (False, True)]
    assert np.abs(probs[0] - probs[1]).max() <= 1e-5
