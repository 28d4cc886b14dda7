"""The Lightning driver and the plain-PyTorch driver train the same model from the same seed."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table

from tabularnet.data.datamodule import TabularDataModule
from tabularnet.training.lightning_modules import MLPLightningModule, TransformerLightningModule
from tabularnet.training.torch_trainer import EarlyStopping, TorchTrainer

RECIPE = dict(
    label_smoothing=0.1,
    weight_decay=1e-4,
    optimizer={"name": "AdamW", "lr": 3e-3},
    scheduler={"name": "cosine", "warmup_proportion": 0.1},
    mixup={"enabled": True, "alpha": 0.4},
    noise={"enabled": True, "std": 0.1},
)
NETWORKS = {
    "mlp": (MLPLightningModule, dict(hidden_dims=[32, 16], dropout=0.2, activation="geglu")),
    "ft_transformer": (TransformerLightningModule, dict(d_model=16, nhead=2, num_layers=2, dropout=0.1)),
    "mlp_plr": (MLPLightningModule, dict(hidden_dims=[16], num_embedding="plr", d_num_embedding=8)),
    "mlp_ple": (MLPLightningModule, dict(hidden_dims=[16], num_embedding="ple", d_num_embedding=8, n_bins=6)),
    "ft_transformer_ple": (TransformerLightningModule, dict(d_model=16, nhead=2, num_layers=1, num_embedding="ple")),
    # TabM: k = 4 members (val_probs compares every member's probabilities)
    "tabm": (MLPLightningModule, dict(hidden_dims=[32, 16], dropout=0.2, activation="geglu", norm="batch", k=4)),
    "tabm_mini_plr": (
        MLPLightningModule,
        dict(hidden_dims=[16], num_embedding="plr", d_num_embedding=8, k=4, ensemble="mini"),
    ),
}


def make_module(cls, kwargs, dm: TabularDataModule, seed: int, class_weight=None):
    torch.manual_seed(seed)
    return cls(
        n_num_features=dm.n_num_features,
        cat_cardinalities=dm.cat_cardinalities,
        n_classes=dm.n_classes,
        classes=dm.classes,
        class_counts=dm.class_counts,
        class_weight=class_weight,
        **{**RECIPE, **kwargs},
    )


def val_probs(module, dm) -> torch.Tensor:
    tensors = dm.split_tensors("val")
    with torch.no_grad():
        return module.net.eval()(tensors["x_num"], tensors["x_cat"]).softmax(-1)


@pytest.mark.parametrize(
    ("name", "class_weight"),
    [
        ("mlp", None),
        ("mlp", {"yes": 3.0}),
        ("ft_transformer", None),
        ("ft_transformer", "balanced"),
        ("mlp_plr", None),
        ("mlp_ple", None),  # PLE: both drivers set the same data-dependent bin edges before the first step
        ("ft_transformer_ple", None),
        ("tabm", {"yes": 3.0}),
        ("tabm_mini_plr", None),
    ],
)
def test_same_seed_same_model(name, class_weight):
    cls, kwargs = NETWORKS[name]
    seed = 123
    table = make_table(300, seed=0)
    table = table[(table["target"] == "no") | (np.arange(len(table)) % 3 == 0)]  # imbalanced: weights matter
    dm = TabularDataModule.from_frames(table, target="target", batch_size=32, seed=seed)

    lightning_module = make_module(cls, kwargs, dm, seed, class_weight)
    if class_weight is not None:
        assert lightning_module.recipe.class_weight[1] > 1.5 * lightning_module.recipe.class_weight[0]
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(lightning_module, datamodule=dm)

    torch_module = make_module(cls, kwargs, dm, seed, class_weight)
    TorchTrainer(torch_module.recipe, max_epochs=3, seed=seed, gradient_clip_val=1.0).fit(
        torch_module.net, dm.train_dataloader(), dm.val_dataloader()
    )
    difference = (val_probs(lightning_module, dm) - val_probs(torch_module, dm)).abs().max().item()
    assert difference <= 1e-5
    buffers = dict(torch_module.net.named_buffers())  # PLE's bin edges: set from the same training rows
    for buffer_name, buffer in lightning_module.net.named_buffers():
        assert torch.equal(buffer, buffers[buffer_name]), buffer_name
    if name.endswith("_ple"):
        edges = torch_module.net.get_buffer(next(n for n in buffers if n.endswith("edges")))
        assert not torch.allclose(edges, torch.linspace(-2, 2, edges.shape[1]).expand_as(edges))  # fitted
    # and training really changed the weights (the comparison is not between two untrained nets)
    untrained = make_module(cls, kwargs, dm, seed, class_weight)
    assert (val_probs(untrained, dm) - val_probs(torch_module, dm)).abs().max().item() > 1e-3


def test_different_seeds_differ(table):
    cls, kwargs = NETWORKS["mlp"]
    dm = TabularDataModule.from_frames(table, target="target", batch_size=32)
    runs = []
    for seed in (1, 2):
        module = make_module(cls, kwargs, dm, seed)
        TorchTrainer(module.recipe, max_epochs=2, seed=seed).fit(module.net, dm.train_dataloader())
        runs.append(val_probs(module, dm))
    assert (runs[0] - runs[1]).abs().max().item() > 1e-4


def test_torch_trainer_early_stopping_restores_the_best_epoch(table):
    cls, kwargs = NETWORKS["mlp"]
    dm = TabularDataModule.from_frames(table, target="target", batch_size=32)
    module = make_module(cls, kwargs, dm, 0)
    trainer = TorchTrainer(module.recipe, max_epochs=60, seed=0, early_stopping=EarlyStopping(True, "val_loss", 3))
    trainer.fit(module.net, dm.train_dataloader(), dm.val_dataloader())
    history = trainer.history
    assert len(history.val_loss) < 60  # stopped early
    assert len(history.val_loss) - 1 - history.best_epoch == 3
    restored_loss, _ = trainer.evaluate(module.net, dm.val_dataloader())
    assert restored_loss == pytest.approx(min(history.val_loss), abs=1e-6)


def test_early_stopping_without_validation_data_is_an_error(table):
    cls, kwargs = NETWORKS["mlp"]
    dm = TabularDataModule.from_frames(table, target="target", val_fraction=0.0)
    module = make_module(cls, kwargs, dm, 0)
    with pytest.raises(ValueError, match="early stopping needs validation data"):
        TorchTrainer(module.recipe, max_epochs=2, early_stopping=EarlyStopping(True)).fit(
            module.net, dm.train_dataloader(), dm.val_dataloader()
        )


def test_balanced_class_weight_raises_minority_recall():
    """On a 9:1 table the unweighted loss favours the majority; balanced weights recover minority rows."""
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, n) > 1.9, "rare", "common")
    frame = pd.DataFrame(x, columns=["a", "b"]).assign(target=y)
    train, test = frame.iloc[:1500], frame.iloc[1500:]
    assert 0.05 < (train["target"] == "rare").mean() < 0.15
    dm = TabularDataModule.from_frames(train, target="target", batch_size=64, val_fraction=0.0)
    rare_index = dm.classes.index("rare")  # fits the preprocessing
    test_x = dm.preprocessor.transform(test)
    rare = torch.tensor((test["target"] == "rare").to_numpy())
    recalls = {}  # class_weight -> (recall of rare, recall of common)
    for class_weight in (None, "balanced"):
        cls, kwargs = NETWORKS["mlp"]
        module = make_module(cls, kwargs, dm, 0, class_weight)
        TorchTrainer(module.recipe, max_epochs=20, seed=0).fit(module.net, dm.train_dataloader())
        with torch.no_grad():
            predicted = module.net.eval()(test_x["x_num"], test_x["x_cat"]).argmax(-1)
        hits = predicted == torch.where(rare, rare_index, 1 - rare_index)
        recalls[class_weight] = (hits[rare].float().mean().item(), hits[~rare].float().mean().item())
    (rare_plain, common_plain), (rare_balanced, common_balanced) = recalls[None], recalls["balanced"]
    assert rare_balanced > rare_plain + 0.1, recalls
    assert rare_balanced + common_balanced > rare_plain + common_plain, recalls  # balanced accuracy rises too


def fit_both(dm, seed: int, *, device_resident: bool = False, **module_kwargs):
    """(Lightning module, TorchTrainer module) after 2 epochs of the MLP with the recipe from ``seed``."""
    cls, kwargs = NETWORKS["mlp"]
    lightning_module = make_module(cls, {**kwargs, **module_kwargs}, dm, seed)
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(lightning_module, datamodule=dm)
    torch_module = make_module(cls, {**kwargs, **module_kwargs}, dm, seed)
    TorchTrainer(
        torch_module.recipe, max_epochs=2, seed=seed, device_resident=device_resident,
        compile=module_kwargs.get("compile", False),
    ).fit(torch_module.net, dm.train_dataloader(), dm.val_dataloader())  # fmt: skip
    return lightning_module, torch_module


def test_device_resident_loaders_train_the_same_model(table):
    plain = TabularDataModule.from_frames(table, target="target", batch_size=32, seed=5)
    resident = TabularDataModule.from_frames(table, target="target", batch_size=32, seed=5, device_resident=True)
    reference, _ = fit_both(plain, 5)
    lightning_module, torch_module = fit_both(resident, 5, device_resident=True)
    # attached to a trainer, the loaders hold their tables on its root device (the CPU here)
    assert resident.train_dataloader().device == torch.device("cpu")
    assert plain.train_dataloader().device is None
    for module in (lightning_module, torch_module):
        assert (val_probs(module, plain) - val_probs(reference, plain)).abs().max().item() <= 1e-6


def test_device_resident_cannot_stream(table):
    from tabularnet.data.schema import DataError

    with pytest.raises(DataError, match="device_resident.*streaming"):
        TabularDataModule(train_path="x.parquet", streaming=True, device_resident=True)


def test_compile_keeps_the_checkpoint_layout(table):
    dm = TabularDataModule.from_frames(table, target="target", batch_size=32)
    cls, kwargs = NETWORKS["mlp"]
    compiled, plain = (make_module(cls, {**kwargs, "compile": flag}, dm, 0) for flag in (True, False))
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    assert compiled._train_net is not compiled.net and plain._train_net is plain.net


@pytest.mark.slow
def test_compiled_training_matches_eager(table):
    """``compile: true`` trains the same model (no dropout or augmentation: their random streams differ)."""
    dm = TabularDataModule.from_frames(table, target="target", batch_size=64, seed=1)
    options = dict(dropout=0.0, activation="relu", mixup=None, noise=None)
    from torch._dynamo.utils import counters

    eager, _ = fit_both(dm, 1, **options)
    counters.clear()
    lightning_module, torch_module = fit_both(dm, 1, compile=True, **options)
    assert counters["stats"]["unique_graphs"] >= 1  # the training steps really went through torch.compile
    for module in (lightning_module, torch_module):
        assert (val_probs(module, dm) - val_probs(eager, dm)).abs().max().item() <= 1e-4
