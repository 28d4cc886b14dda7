"""Lightning driver: one TabularModule, two thin LightningModules that differ only in the network they build."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import torch
from torch import nn

import tabularnet
from tabularnet.data.task import unscale_target
from tabularnet.lightning_private import CheapHookNameMixin
from tabularnet.nn import MLP, FTTransformer
from tabularnet.nn.layers import initialize_from_data, needs_data
from tabularnet.training.calibration import network_logits, temperature_scaling
from tabularnet.training.config import Recipe
from tabularnet.training.objectives import AugmentationRNG, batch_weight, seed_training, training_loss
from tabularnet.training.optim import make_optimizer, make_scheduler
from tabularnet.training.options import (
    LightningOptions,
    LinkedOptions,
    MLPOptions,
    RecipeOptions,
    TransformerOptions,
    build_network,
    check_linked_task,
    plain,
    with_options,
)


class TabularModule(CheapHookNameMixin, pl.LightningModule):
    """Training, evaluation and prediction steps, metrics and optimizers for any tabular network.

    A subclass names its ``network`` (an ``nn.Module`` class) and is decorated with :func:`with_options` over
    :class:`LinkedOptions`, its network's options, :class:`RecipeOptions` and :class:`LightningOptions`: that
    declaration is its ``__init__``; the network is built from the options its class accepts, ``n_classes`` as
    ``d_out``.
    """

    network: type[nn.Module]

    def _init_options(self, **options) -> None:
        super().__init__()
        name = type(self).__name__
        class_path = f"tabularnet.{name}" if name in tabularnet.__all__ else f"{type(self).__module__}.{name}"
        # NOTE: the arguments as plain containers (weights_only checkpoints) and the class, which
        # `predict --ckpt_path` and the estimators' load() read; explicit, so direct construction (the estimators)
        # and LightningCLI's store the same hyperparameters
        self.save_hyperparameters({"_class_path": class_path, **plain(options)})
        check_linked_task(options)
        self.recipe = Recipe.from_options(options)
        self.task = self.recipe.task
        self.target_scaling = options["target_scaling"]
        self.net = build_network(self.network, options)
        # NOTE: a buffer, so the temperature travels in state_dict (checkpoints, save()) with the weights
        self.register_buffer("temperature", torch.ones(()))
        metrics = partial(self.task.metrics, options["n_classes"], target_scaling=self.target_scaling)
        self.val_metrics, self.test_metrics = metrics("val_"), metrics("test_")
        # the same metrics with sample weights, for splits whose batches carry a "weight" (data.weight_column)
        self.weighted_val_metrics = metrics("val_", weighted=True)
        self.weighted_test_metrics = metrics("test_", weighted=True)
        self.rng = AugmentationRNG(0)
        # NOTE: not a registered submodule, so state_dict keys stay those of self.net
        object.__setattr__(self, "_train_net", torch.compile(self.net) if options["compile"] else self.net)

    @property
    def lr(self) -> float:
        """The optimizer's base learning rate (Lightning's LearningRateFinder reads and sets it)."""
        return self.recipe.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.recipe.optimizer.lr = float(value)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.net(x_num, x_cat)

    def probabilities(self, batch: dict) -> torch.Tensor:
        """What the model predicts for ``batch``: ``(B, n_classes)`` class probabilities, softmax(logits / T) with
        the fitted temperature (1 until :meth:`calibrate_temperature`), an ensemble's members' probabilities
        averaged; for regression ``(B,)`` predictions in the target's original units (the members' mean)."""
        outputs = self.net(batch["x_num"], batch["x_cat"]).float()
        return self.task.outputs(outputs, self.temperature, self.target_scaling)

    # --------------------------------------------------------------- calibration
    def split_logits(self, loader) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated logits ``(n, n_classes)`` (``(n, k, n_classes)`` for k members) and labels ``(n,)`` of every
        batch of ``loader`` (eval mode)."""
        return network_logits(self.net, loader)

    def calibrate_temperature(self, loader) -> dict[str, float]:
        """Fit the temperature on ``loader`` (the validation split); returns T and the ECE before and after."""
        result = temperature_scaling(*self.split_logits(loader))
        self.temperature.fill_(result["temperature"])
        return result

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        # data-dependent initialisation (PLE bin edges) from the training split, as TorchTrainer does; a resumed
        # run's checkpoint is restored after this and brings back its own edges
        if stage == "fit" and needs_data(self.net):
            initialize_from_data(self.net, *self.trainer.datamodule.training_numeric_inputs(with_weights=True))

    def on_train_start(self) -> None:
        # NOTE: the run's seed (seed_everything / random_seed) re-seeds dropout and the augmentations right
        # before the first step, exactly as TorchTrainer does, so both drivers see the same random streams.
        restored = getattr(self, "_restored_dropout_rng", None)
        if restored is None:
            self.rng = seed_training(torch.initial_seed())
        else:  # a resumed run continues its saved streams
            torch.set_rng_state(restored)

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_rows = torch.zeros((), device=self.device), 0
        loader = self.trainer.train_dataloader
        if hasattr(loader, "set_epoch"):  # batch order depends on (seed, epoch) only, also after a resume
            loader.set_epoch(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the objective's streams and dropout's global stream, so a resumed run continues where it stopped
        checkpoint["augmentation_rng"] = {**self.rng.state_dict(), "dropout": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "augmentation_rng" in checkpoint:
            self.rng.load_state_dict(checkpoint["augmentation_rng"])
            self._restored_dropout_rng = checkpoint["augmentation_rng"].get("dropout")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = training_loss(self._train_net, batch, self.recipe, self.rng)
        # NOTE: a running sum instead of self.log per step: Lightning's per-call logging costs more than the
        # forward/backward of a small tabular network; the epoch mean is logged once in on_train_epoch_end.
        weight = batch_weight(batch)  # rows, or the batch's total sample weight
        self._loss_sum += out.loss.detach() * weight
        self._loss_rows += weight
        return out.loss

    def on_train_epoch_end(self) -> None:
        rows = self._loss_rows  # an int (rows), or a tensor (total sample weight, > 0 in a non-empty epoch)
        self.log(
            "train_loss",
            self._loss_sum / (rows if isinstance(rows, torch.Tensor) else max(rows, 1)),
            prog_bar=True,
            sync_dist=True,
        )
        optimizers = self.trainer.optimizers
        if optimizers:  # the learning rate at the end of the epoch (the schedule steps per batch)
            self.log("lr", float(optimizers[0].param_groups[0]["lr"]), sync_dist=False)

    def configure_optimizers(self):
        optimizer = make_optimizer(self.net, self.recipe)
        scheduler = make_scheduler(optimizer, self.recipe, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict, metrics, weighted_metrics) -> None:
        outputs, y = self.probabilities(batch), batch["y"]
        if self.target_scaling is not None:  # regression metrics are in original units
            y = unscale_target(y.double(), self.target_scaling)
        if "weight" in batch:  # a split with sample weights: every metric weighted
            weighted_metrics.update(outputs, y, weight=batch["weight"])
        else:
            metrics.update(outputs, y)

    def _log_epoch_metrics(self, metrics, prefix: str) -> None:
        """Compute the epoch's metrics once (synced across processes by torchmetrics) and log them.

        NOTE: logging the loss and the metric objects after every batch, as Lightning's examples do, ran Lightning's
        result bookkeeping (registration, device moves, batch-size reduction) for six values on every batch;
        once per epoch is all that checkpointing, early stopping and TensorBoard read.
        ``{prefix}loss`` is the log loss (mean negative log-likelihood of the true class), or the regression
        loss on the standardised target. ``metrics`` is the
        unweighted collection or the sample-weighted one, whichever the split's batches updated.
        """
        if not any(metric.update_called for metric in metrics.values()):
            return
        values = metrics.compute()
        metrics.reset()
        shown = prefix == "val_"
        if self.task.loss_metric != "loss":
            self.log(f"{prefix}loss", values[f"{prefix}{self.task.loss_metric}"], prog_bar=shown)
        self.log_dict(values, prog_bar=shown)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.weighted_val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics, "val_")
        self._log_epoch_metrics(self.weighted_val_metrics, "val_")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, self.weighted_test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics(self.test_metrics, "test_")
        self._log_epoch_metrics(self.weighted_test_metrics, "test_")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Class probabilities, ``(B, n_classes)`` (calibrated when a temperature was fitted); regression:
        predictions ``(B,)`` in original units."""
        return self.probabilities(batch)


MODULE_OPTIONS = (LinkedOptions, RecipeOptions, LightningOptions)


@with_options(LinkedOptions, MLPOptions, RecipeOptions, LightningOptions, list_defaults=True)
class MLPLightningModule(TabularModule):
    """An :class:`~tabularnet.nn.MLP` trained with the shared recipe."""

    network = MLP


@with_options(LinkedOptions, TransformerOptions, RecipeOptions, LightningOptions, list_defaults=True)
class TransformerLightningModule(TabularModule):
    """An :class:`~tabularnet.nn.FTTransformer` trained with the shared recipe."""

    network = FTTransformer


TrainingMixin = TabularModule  # the earlier name of the base class (LightningCLI's subclass mode uses it)
