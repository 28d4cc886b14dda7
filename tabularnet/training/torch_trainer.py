"""The plain-PyTorch driver (``use_lightning=False``): the same network, objective, optimizer and schedule."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from tabularnet.data.loader import TensorBatchLoader
from tabularnet.nn.layers import initialize_from_data, needs_data
from tabularnet.training.config import Recipe
from tabularnet.training.objectives import batch_weight, seed_training, training_loss
from tabularnet.training.optim import make_optimizer, make_scheduler
from tabularnet.training.progress import EpochProgress, epoch_label


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` (``val_loss``, lower is better, or ``val_acc``, higher is better) has not improved
    for ``patience`` epochs; the best epoch's weights are restored at the end."""

    enabled: bool = False
    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0

    @property
    def mode(self) -> str:
        return "min" if self.monitor.endswith("loss") else "max"

    def improved(self, value: float, best: float) -> bool:
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)  # regression: the mean squared error (standard scale)
    best_epoch: int | None = None


class TorchTrainer:
    """A minimal training loop over :class:`~tabularnet.data.loader.TensorBatchLoader` batches.

    Args:
        recipe: the training recipe (loss, augmentations, optimizer, schedule).
        max_epochs: epochs to train.
        seed: seeds dropout and the augmentations at the start of :meth:`fit` (as the Lightning driver does).
        early_stopping: early-stopping settings (needs validation data).
        gradient_clip_val: clip the global gradient norm to this value (``None``: no clipping).
        device: where to train (``"cpu"``, ``"cuda"``...).
        compile: train through ``torch.compile(net)`` (``net`` itself is updated and returned).
        device_resident: copy the tables of :class:`~tabularnet.data.loader.TensorBatchLoader` loaders to
            ``device`` once and draw batches there (no host-to-device copy per batch).
        progress: show progress: Rich bars (epochs, batches) when Rich is installed, else one line per epoch on
            stderr.
    """

    def __init__(
        self,
        recipe: Recipe,
        *,
        max_epochs: int,
        seed: int = 0,
        early_stopping: EarlyStopping | None = None,
        gradient_clip_val: float | None = None,
        device: str | torch.device = "cpu",
        device_resident: bool = False,
        compile: bool = False,
        progress: bool = False,
    ) -> None:
        self.recipe, self.max_epochs, self.seed = recipe, max_epochs, seed
        self.compile = compile
        self.device_resident = device_resident
        self.early_stopping = early_stopping or EarlyStopping()
        self.gradient_clip_val, self.device, self.progress = gradient_clip_val, torch.device(device), progress
        self.history = History()

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def fit(self, net: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None) -> nn.Module:
        """Train ``net`` in place and return it (with the best epoch's weights when early stopping)."""
        stop = self.early_stopping
        if stop.enabled and not val_loader:
            raise ValueError("early stopping needs validation data (X_val/y_val or training.validation_split)")
        if stop.monitor == "val_acc" and self.recipe.task.name == "regression":
            raise ValueError("early_stopping monitor 'val_acc' is for classification; use 'val_loss' for regression")
        net.to(self.device)
        if self.device_resident:
            train_loader, val_loader = (
                loader.to(self.device) if isinstance(loader, TensorBatchLoader) else loader
                for loader in (train_loader, val_loader)
            )
        if needs_data(net):  # PLE bin edges from the training split, as the Lightning module's setup() does
            tensors = getattr(train_loader, "tensors", None)
            if tensors is None:
                raise ValueError("num_embedding='ple' needs the training tensors: pass a TensorBatchLoader")
            initialize_from_data(net, tensors["x_num"], tensors.get("weight"))
        optimizer = make_optimizer(net, self.recipe)
        scheduler = make_scheduler(optimizer, self.recipe, self.max_epochs * len(train_loader))
        rng = seed_training(self.seed)
        forward = torch.compile(net) if self.compile else net
        best, best_state, waited = math.inf if stop.mode == "min" else -math.inf, None, 0
        with EpochProgress(self.max_epochs, enabled=self.progress) as progress:
            for epoch in range(self.max_epochs):
                start = time.perf_counter()
                self.history.train_loss.append(
                    self._train_epoch(net, forward, train_loader, epoch, optimizer, scheduler, rng, progress)
                )
                if val_loader:
                    val_loss, val_acc = self.evaluate(net, val_loader)
                    self.history.val_loss.append(val_loss)
                    self.history.val_acc.append(val_acc)
                progress.end_epoch(self._epoch_line(epoch, time.perf_counter() - start))
                if stop.enabled:
                    value = self.history.val_loss[-1] if stop.monitor == "val_loss" else self.history.val_acc[-1]
                    if stop.improved(value, best):
                        best, waited, self.history.best_epoch = value, 0, epoch
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        waited += 1
                        if waited >= stop.patience:
                            break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net

    def _train_epoch(self, net, forward, loader, epoch, optimizer, scheduler, rng, progress: EpochProgress) -> float:
        """One pass over ``loader`` (the loss through ``forward``: ``net`` or its compiled form); the mean
        training loss per row (per unit of sample weight when the batches carry weights)."""
        net.train()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        progress.start_epoch(len(loader))
        total, count = torch.zeros((), device=self.device), 0
        for batch in loader:
            batch = self._to_device(batch)
            loss = training_loss(forward, batch, self.recipe, rng).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.gradient_clip_val:
                # NOTE: over the optimizer's parameters in its group order, as Lightning clips: the global norm is
                # then summed in the same order, and both drivers scale the gradients by the same factor
                parameters = [p for group in optimizer.param_groups for p in group["params"]]
                nn.utils.clip_grad_norm_(parameters, self.gradient_clip_val)
            optimizer.step()
            scheduler.step()
            weight = batch_weight(batch)
            total += loss.detach() * weight
            count += weight
            progress.advance()
        return float(total / count) if count > 0 else 0.0

    @torch.no_grad()
    def evaluate(self, net: nn.Module, loader: Iterable) -> tuple[float, float]:
        """(log loss, accuracy) of ``net`` over ``loader`` -- for regression (loss, mean squared error) on the
        standardised target --; weighted means when the batches carry weights."""
        net.eval()
        loss_sum, correct, count = 0.0, 0.0, 0.0
        for batch in loader:
            batch = self._to_device(batch)
            logits = net(batch["x_num"], batch["x_cat"])
            sums = self.recipe.task.evaluation_sums(logits, batch["y"], batch.get("weight"))
            loss_sum, correct, count = loss_sum + sums[0], correct + sums[1], count + sums[2]
        return (loss_sum / count, correct / count) if count > 0 else (0.0, 0.0)

    def _epoch_line(self, epoch: int, seconds: float) -> str:
        h = self.history
        line = f"{epoch_label(epoch, self.max_epochs)}  train_loss {h.train_loss[-1]:.4f}"
        if h.val_loss:
            line += f"  val_loss {h.val_loss[-1]:.4f}  val_{self.recipe.task.score} {h.val_acc[-1]:.4f}"
        return f"{line}  ({seconds:.1f}s)"
