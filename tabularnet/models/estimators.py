"""What every estimator of the original Python API shares: fit, predict, save/load and export, on both drivers.

Both drivers train the same network with the same recipe: ``use_lightning=True`` runs Lightning's Trainer on the
LightningModule that wraps it, ``use_lightning=False`` (the default, as in the original) runs
:class:`TorchTrainer` -- and imports no Lightning at all, nor does prediction from a saved model.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from tabularnet import atomic
from tabularnet._quiet import quiet_lightning
from tabularnet.data.checkpoint import DATAMODULE_KEY, load_checkpoint, load_model_checkpoint
from tabularnet.data.loader import TensorBatchLoader
from tabularnet.data.preprocessing import Preprocessor
from tabularnet.data.schema import (
    DEFAULT_NA_VALUES,
    DataError,
    check_known_keys,
)
from tabularnet.data.tabular_data import TabularData
from tabularnet.data.task import regression_targets
from tabularnet.lightning_private import CHECKPOINT_VERSION_KEY
from tabularnet.models.inputs import as_frame, check_sample_weight, training_device
from tabularnet.training import budget
from tabularnet.training.calibration import (
    network_logits,
    network_outputs,
    temperature_scaling,
)
from tabularnet.training.config import Recipe
from tabularnet.training.options import RecipeOptions, build_network, option, plain
from tabularnet.training.torch_trainer import EarlyStopping, TorchTrainer

TARGET = "__target__"
WEIGHT = "__sample_weight__"  # the training frame's column of sample weights (the data module's weight_column)
TRAINING_DEFAULTS = {
    "batch_size": 64,
    "epochs": None,  # None: the adaptive budget (tabularnet.training.budget)
    "eval_batch_size": 4096,
    "early_stopping": None,
    "validation_split": 0.1,
    "gradient_clip_val": None,
    "compile": False,
    "device": "auto",
}
# Estimator parameters passed to the data module as they are (see TabularDataModule for their meaning).
DATA_PARAMS = ("na_values", "high_cardinality", "max_categories", "min_frequency")


@dataclass
class EstimatorOptions:
    """Options of the estimators only (the command line has them in the data module and the trainer)."""

    na_values: Optional[list[str]] = option(
        None,
        "text values that mean missing (``None``: ``'?'``, ``'n/a'``, ``'NA'``, ``'null'``... see the README); a "
        "text column holding only numbers besides them is numeric.",
    )
    high_cardinality: str = option(
        "drop",
        "``'drop'`` (default, with a warning), ``'hash'`` or ``'keep'`` categorical columns with more than "
        "``max_categories`` distinct values.",
    )
    max_categories: int = option(100, "the cardinality above which a categorical column is high-cardinality.")
    min_frequency: int = option(1, "categories seen fewer times in training share the unknown-category embedding.")
    training: Optional[dict] = option(
        None,
        "``{'batch_size': 64, 'epochs': None, 'early_stopping': {'enabled', 'monitor', 'patience', 'min_delta'}, "
        "'validation_split': 0.1, 'gradient_clip_val': None, 'eval_batch_size': 4096, 'compile': False, "
        "'device': 'auto'}`` (``epochs``: given, exactly that many (with early stopping only if asked); ``None``: "
        "train until the validation loss has not improved for 16 epochs, at most ~20,000 steps (32-200 epochs), "
        "on ``validation_split`` of X unless X_val/y_val are given, and keep the best epoch; "
        "``compile``: train through ``torch.compile(net)``; ``device``: ``'cpu'``, "
        "``'cuda'``, ``'cuda:N'``, ``'mps'`` or ``'auto'`` (a GPU when there is one); on an accelerator the table is "
        "copied there once; the fitted network comes back to the CPU).",
    )
    random_seed: int = option(42, "seeds weights, batch order, dropout and augmentations.")
    use_lightning: bool = option(
        False, "train with Lightning's Trainer instead of the plain PyTorch loop (the same model for the same seed)."
    )
    verbose: bool = option(False, "show progress.")


class TabularEstimator(BaseEstimator):
    """Shared fit/predict/save logic of classifiers and regressors. A subclass names its task, its network, its
    LightningModule and its network's options (``options`` decorated with
    :func:`~tabularnet.training.options.with_options`)."""

    task: str  # "classification" or "regression"
    network_class: type[torch.nn.Module]
    module_name: str  # the LightningModule in tabularnet that wraps network_class
    network_options: type  # the dataclass of the network's options (MLPOptions, TransformerOptions)

    def _init_options(self, **params) -> None:
        # scikit-learn's contract: __init__ stores each argument unchanged under its own name, nothing else
        for name, value in params.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ options
    def _training(self, *, resolve_device: bool = True) -> dict:
        training = dict(self.training or {})
        check_known_keys(training, TRAINING_DEFAULTS, "training")
        merged = {**TRAINING_DEFAULTS, **training}
        if resolve_device:  # not for prediction: a model trained on a GPU predicts wherever it was loaded
            merged["device"] = training_device(merged["device"])
        return merged

    def _early_stopping(self, training: dict) -> EarlyStopping:
        spec = training["early_stopping"] or {}
        check_known_keys(spec, [f.name for f in dataclasses.fields(EarlyStopping)], "training.early_stopping")
        stop = EarlyStopping(**spec)
        if stop.monitor not in ("val_loss", "val_acc"):
            raise ValueError(
                f"training.early_stopping.monitor must be 'val_loss' or 'val_acc', however: {stop.monitor!r}"
            )
        return stop

    def _hparams(self, data: TabularData) -> dict:
        """The LightningModule's arguments: data-derived sizes and labels, network parameters and the recipe."""
        return {
            "n_num_features": data.n_num_features,
            "cat_cardinalities": list(data.cat_cardinalities),
            "n_classes": data.n_classes,
            "classes": None if data.classes is None else plain(list(data.classes)),
            "class_counts": data.class_counts,
            "task_type": data.task_type,
            "target_scaling": data.target_scaling,
            **{f.name: plain(getattr(self, f.name)) for f in fields(self.network_options)},
            **{f.name: plain(getattr(self, f.name)) for f in fields(RecipeOptions)},
        }

    def _lightning_module(self, hparams: dict):
        from tabularnet.training import lightning_modules

        return getattr(lightning_modules, self.module_name)(**hparams)

    # ---------------------------------------------------------------- training
    def _fit(self, X, y, teacher=None, X_val=None, y_val=None, sample_weight=None):
        """Fit on ``X, y``; ``teacher``: the teacher's outputs for the rows of X (classification: probabilities
        or logits ``(n, n_classes)``; regression: predictions ``(n,)`` in the target's units) for distillation;
        ``X_val, y_val`` for validation (else ``training.validation_split`` of X when early stopping is on).

        ``sample_weight``: one weight per row of X (finite, >= 0, not all zero). The training loss, the
        preprocessing statistics and ``class_weight='balanced'`` weigh each row by it (a row of integer weight
        ``k`` counts as ``k`` copies of it, weight 0 as absent); validation rows carved from X keep their weights
        and the validation metrics are then weighted. ``X_val, y_val`` rows weigh 1."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        training, X_frame = self._training(), as_frame(X)
        stop = self._early_stopping(training)
        y = column_or_1d(y, warn=True)
        missing = pd.isna(y)
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise DataError(f"Input y contains NaN ({int(missing.sum())} missing labels, first at row {first})")
        if self.task == "classification":
            check_classification_targets(y)
        else:
            y = regression_targets(y, source="y", name="y")
        if len(y) != len(X_frame):
            raise DataError(f"y has {len(y)} labels but X has {len(X_frame)} rows")
        weights = check_sample_weight(sample_weight, y, classes=self.task == "classification")
        if training["epochs"] is None:  # no budget given: the adaptive one (early stopping, bounded epochs)
            training, stop = budget.adaptive_training(training, stop, len(y), X_val is not None)
        self.n_features_in_ = X_frame.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X_frame.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        for reserved in (TARGET, WEIGHT):
            if reserved in X_frame.columns:
                raise DataError(f"X has a column named {reserved!r}, which tabularnet reserves")
        train = X_frame.assign(**{TARGET: y})
        if weights is not None:
            train[WEIGHT] = weights
        val = None if X_val is None else as_frame(X_val, list(X_frame.columns)).assign(**{TARGET: np.asarray(y_val)})
        logits = None if teacher is None else self._teacher_outputs(teacher, y)
        data_class = TabularData
        if self.use_lightning:
            from tabularnet.data.datamodule import TabularDataModule as data_class
        dm = data_class.from_frames(
            train,
            val=val,
            teacher_logits=logits,
            target=TARGET,
            task=self.task,
            target_transform=getattr(self, "target_transform", "none"),
            weight_column=WEIGHT if weights is not None else None,
            val_fraction=training["validation_split"] if (stop.enabled or self.calibrate) and val is None else 0.0,
            batch_size=training["batch_size"],
            eval_batch_size=training["eval_batch_size"],
            seed=self.random_seed,
            device_resident=training["device"].type != "cpu",  # on an accelerator: the table lives there
            **{name: self._data_param(name) for name in DATA_PARAMS},
        )
        hparams = self._hparams(dm)
        recipe = Recipe.from_options(hparams)
        torch.manual_seed(self.random_seed)  # same initial weights for both drivers
        if self.use_lightning:
            module = self._lightning_module({**hparams, "compile": training["compile"]})
            self._fit_lightning(module, dm, training, stop)
            net = module.net
        else:
            net = build_network(self.network_class, hparams)
            trainer = TorchTrainer(
                recipe,
                max_epochs=training["epochs"],
                seed=self.random_seed,
                early_stopping=stop,
                gradient_clip_val=training["gradient_clip_val"],
                compile=training["compile"],
                device=training["device"],
                device_resident=training["device"].type != "cpu",
                progress=self.verbose,
            )
            val_loader = dm.val_dataloader()
            trainer.fit(net, dm.train_dataloader(), val_loader or None)
            self.history_ = trainer.history
        self.temperature_ = 1.0
        if self.calibrate:
            self.calibration_ = temperature_scaling(*network_logits(net, dm.val_dataloader()))
            self.temperature_ = self.calibration_["temperature"]
        # NOTE: fitted models live on the CPU (as Lightning leaves them): picklable, savable and usable anywhere
        self.net_, self.hparams_ = net.cpu().eval(), hparams
        self.preprocessing_ = dm.preprocessor.state_dict()
        self._fitted_labels()
        return self

    def _teacher_outputs(self, teacher, y: np.ndarray) -> torch.Tensor:
        """The teacher's outputs for the data module (a subclass checks their shape)."""
        raise NotImplementedError

    def _fitted_labels(self) -> None:
        """Set the fitted attributes that come from the labels (``classes_``) from :attr:`preprocessing_`."""

    def _data_param(self, name: str):
        value = getattr(self, name)
        if name == "na_values":
            return list(DEFAULT_NA_VALUES if value is None else value)
        return value

    def fit(self, X, y, sample_weight=None, **fit_params):
        """scikit-learn's name for :meth:`train`."""
        return self.train(X, y, sample_weight=sample_weight, **fit_params)

    def _network_outputs(self, X, *, float64: bool = False) -> torch.Tensor | None:
        """The network's outputs for the rows of ``X`` (``None`` for a table without rows); ``float64``: computed
        by a float64 copy of the network, so that a row's prediction does not depend on the other rows of the
        batch (float32 matrix products round differently for different batch sizes, ~1e-7)."""
        check_is_fitted(self, "net_")
        frame = as_frame(X, list(getattr(self, "feature_names_in_", [])) or None)
        if frame.shape[1] != self.n_features_in_ and not isinstance(X, pd.DataFrame):
            raise ValueError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input"
            )
        tensors = Preprocessor().load_state_dict(self.preprocessing_).transform(frame, source="X")
        batch_size = self._training(resolve_device=False)["eval_batch_size"]
        loader = TensorBatchLoader(tensors, batch_size=batch_size, shard=False)
        if not len(loader):
            return None
        if float64:
            net = copy.deepcopy(self.net_).double()
            loader = ({k: v.double() if v.is_floating_point() else v for k, v in b.items()} for b in loader)
            with torch.no_grad():
                return torch.cat([net.eval()(b["x_num"], b["x_cat"]) for b in loader])
        return network_outputs(self.net_, loader)[0]

    def _fit_lightning(self, module, dm, training: dict, stop) -> None:
        import lightning.pytorch as pl

        quiet_lightning(self.verbose)
        from tabularnet.training.lightning_callbacks import default_progress_bar

        callbacks, monitor = [default_progress_bar()] if self.verbose else [], stop.monitor if stop.enabled else None
        with tempfile.TemporaryDirectory(prefix="tabularnet-") as folder:
            if stop.enabled:
                callbacks += [
                    pl.callbacks.EarlyStopping(
                        monitor=monitor, mode=stop.mode, patience=stop.patience, min_delta=stop.min_delta
                    ),
                    pl.callbacks.ModelCheckpoint(dirpath=folder, monitor=monitor, mode=stop.mode),
                ]
            device = training["device"]
            trainer = pl.Trainer(
                max_epochs=training["epochs"],
                accelerator={"cuda": "gpu"}.get(device.type, device.type),
                devices=[device.index] if device.index is not None else 1,
                logger=False,
                callbacks=callbacks,
                enable_checkpointing=stop.enabled,
                enable_progress_bar=self.verbose,
                enable_model_summary=False,
                gradient_clip_val=training["gradient_clip_val"],
                num_sanity_val_steps=0,
                default_root_dir=folder,
            )
            trainer.fit(module, datamodule=dm)
            if stop.enabled and trainer.checkpoint_callback.best_model_path:
                state = load_checkpoint(trainer.checkpoint_callback.best_model_path)["state_dict"]
                module.load_state_dict(state)

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write a checkpoint that ``tabularnet predict --ckpt_path`` and :meth:`load` read (``weights_only``)."""
        check_is_fitted(self, "net_")
        hparams = {**self.hparams_, "_class_path": f"tabularnet.{self.module_name}"}
        checkpoint = {  # the layout of a `tabularnet fit` checkpoint: the module's state_dict holds "net.*"
            "state_dict": {
                **{f"net.{k}": v for k, v in self.net_.state_dict().items()},
                "temperature": torch.tensor(float(self.temperature_)),  # the LightningModule's buffer
            },
            "hyper_parameters": hparams,
            DATAMODULE_KEY: {"preprocessing": self.preprocessing_},
            "datamodule_hyper_parameters": {
                "target": self.preprocessing_["schema"]["target"],
                "task": self.task,
                **{name: plain(self._data_param(name)) for name in DATA_PARAMS},
            },
            CHECKPOINT_VERSION_KEY: importlib.metadata.version("lightning"),
            "tabularnet_estimator": {
                "class": type(self).__name__,
                "params": plain(self.get_params()),
                "feature_names_in": list(getattr(self, "feature_names_in_", [])),
            },
        }
        atomic.torch_save(checkpoint, path)

    @classmethod
    def load(cls, path: str | Path):
        """Load a model written by :meth:`save` or a ``tabularnet fit`` checkpoint."""
        checkpoint = load_model_checkpoint(path)
        hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
        class_path = checkpoint["hyper_parameters"].get("_class_path", "")
        if not class_path.endswith(cls.module_name):
            raise DataError(f"{path}: holds a {class_path or 'unknown model'}, not a {cls.module_name}")
        task = checkpoint[DATAMODULE_KEY]["preprocessing"].get("task", "classification")
        if task != cls.task:
            raise DataError(f"{path}: holds a {task} model; load it with the {task} estimator, not {cls.__name__}")
        saved = checkpoint.get("tabularnet_estimator", {})
        params = saved.get("params") or {k: v for k, v in hparams.items() if k in cls().get_params()}
        estimator = cls(**params)
        net = build_network(cls.network_class, hparams)
        weights = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        try:
            net.load_state_dict(weights)
        except RuntimeError as err:
            reason = str(err).splitlines()[0]
            raise DataError(f"{path}: the weights do not fit a {cls.module_name} ({reason})") from None
        estimator.net_, estimator.hparams_ = net.eval(), hparams
        estimator.temperature_ = float(checkpoint["state_dict"]["temperature"])
        estimator.preprocessing_ = checkpoint[DATAMODULE_KEY]["preprocessing"]
        estimator._fitted_labels()
        schema = estimator.preprocessing_["schema"]
        estimator.n_features_in_ = len(schema["numeric"]) + len(schema["categorical"])
        if saved.get("feature_names_in"):
            estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
        return estimator

    def export_onnx(self, path: str | Path) -> Path:
        """Write the fitted model as one ONNX file: the network with its temperature (output ``probabilities``),
        the preprocessing and the class labels in its metadata. :class:`tabularnet.serving.Predictor` and
        ``tabularnet predict --ckpt_path model.onnx`` read it without torch. Needs ``pip install 'tabularnet[onnx]'``.
        """
        check_is_fitted(self, "net_")
        from tabularnet.models.onnx_export import export_network

        model = f"tabularnet.{self.module_name}"
        return export_network(
            self.net_, path, preprocessing=self.preprocessing_, model=model, temperature=self.temperature_
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags
