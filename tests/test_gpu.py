"""CUDA-only checks (skipped without a GPU): the device-resident loader and both drivers on the accelerator."""

from __future__ import annotations

import pytest
import torch
from conftest import make_table

from tabularnet.data.datamodule import TabularDataModule
from tabularnet.data.loader import TensorBatchLoader

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_resident_loader_batches_live_on_the_gpu_and_cover_every_row():
    rows = torch.arange(1000)
    loader = TensorBatchLoader({"x": rows[:, None].float(), "y": rows}, batch_size=64, shuffle=True, device="cuda")
    assert loader.tensors["y"].is_cuda
    seen = []
    for batch in loader:
        assert batch["x"].is_cuda and batch["y"].is_cuda
        assert torch.equal(batch["x"][:, 0].long(), batch["y"])
        seen.append(batch["y"])
    assert torch.equal(torch.cat(seen).sort().values.cpu(), rows)
    loader.set_epoch(0)
    again = torch.cat([b["y"] for b in loader])
    assert torch.equal(again, torch.cat(seen))  # same seed and epoch, same order


def test_lightning_on_the_gpu_with_resident_tables_matches_torch_trainer():
    import lightning.pytorch as pl

    from tabularnet.training.lightning_modules import MLPLightningModule
    from tabularnet.training.torch_trainer import TorchTrainer

    table = make_table(400, seed=0)
    dm = TabularDataModule.from_frames(table, target="target", batch_size=32, seed=3, device_resident=True)

    def module():
        torch.manual_seed(3)
        return MLPLightningModule(
            dm.n_num_features, dm.cat_cardinalities, dm.n_classes, hidden_dims=[32], dropout=0.0,
            optimizer={"name": "AdamW", "lr": 3e-3}, scheduler={"name": "cosine", "warmup_proportion": 0.1},
        )  # fmt: skip

    lightning_module = module()
    trainer = pl.Trainer(
        max_epochs=2, accelerator="gpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(lightning_module, datamodule=dm)
    assert dm.train_dataloader().tensors["x_num"].is_cuda
    torch_module = module()
    TorchTrainer(torch_module.recipe, max_epochs=2, seed=3, device="cuda", device_resident=True).fit(
        torch_module.net, dm.train_dataloader(), dm.val_dataloader()
    )
    val = {k: v.cuda() for k, v in dm.split_tensors("val").items()}
    with torch.no_grad():
        a = lightning_module.net.cuda().eval()(val["x_num"], val["x_cat"]).softmax(-1)
        b = torch_module.net.eval()(val["x_num"], val["x_cat"]).softmax(-1)
    assert (a - b).abs().max().item() <= 1e-5


def test_estimators_train_on_the_gpu_and_load_on_the_cpu(tmp_path):
    import numpy as np

    from tabularnet.models import MLPClassifier

    df = make_table(400, seed=2)
    X, y = df.drop(columns="target"), df["target"]
    options = dict(hidden_dims=[16], dropout=0.0, training={"epochs": 3, "batch_size": 32, "device": "cuda"})
    torch.cuda.reset_peak_memory_stats()
    models = [MLPClassifier(**options, random_seed=4, use_lightning=flag).train(X, y) for flag in (False, True)]
    assert torch.cuda.max_memory_allocated() > 0  # the training ran on the GPU
    for model in models:  # and the fitted network comes back to the CPU
        assert not next(model.net_.parameters()).is_cuda
    probs = [model.predict_proba(X) for model in models]
    assert np.abs(probs[0] - probs[1]).max() <= 1e-5  # both drivers, same model on the GPU too
    models[1].save(tmp_path / "model.ckpt")
    loaded = MLPClassifier.load(tmp_path / "model.ckpt")
    assert np.abs(loaded.predict_proba(X) - probs[1]).max() <= 1e-6
