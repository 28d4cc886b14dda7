"""TabularData: files or frames in, preprocessed in-memory tensor batches out -- without Lightning.

The Python estimators' plain-PyTorch path uses :class:`TabularData` itself, so that scripts which train with
``use_lightning=False`` or only predict never import Lightning. A subclass adapts it to a framework by overriding
:meth:`TabularData._record_arguments` and :meth:`TabularData._resident_device`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tabularnet.data.checkpoint import datamodule_state
from tabularnet.data.labeled_tables import (
    TEACHER_ROW,
    carve_splits,
    check_training_columns,
    clean_training_table,
    read_split_table,
    sample_weights,
    split_paths,
)
from tabularnet.data.preprocessing import DEFAULT_SCALING, HighCardinality, Preprocessor, Scaling
from tabularnet.data.schema import DEFAULT_NA_VALUES, DataError
from tabularnet.data.sources import read_table
from tabularnet.data.split_loaders import SplitLoaders
from tabularnet.data.streaming_fit import fit_on_sample
from tabularnet.data.streaming_plan import RowSplit, check_streaming_options, streamed_splits
from tabularnet.data.task import TargetTransform, Task, TaskArg, check_task_options, decide_task
from tabularnet.data.teacher import cached_teacher_logits, check_teacher, read_teacher_logits, student_targets


class Arguments(dict):
    """Attribute access to the constructor arguments (``hparams.batch_size``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TabularData(SplitLoaders):
    """A classification or regression table: reading, splitting, preprocessing (fitted on the training split
    only), batches.

    Args:
        dataset: a named dataset (adult, covertype, higgs, bank-marketing, letter, magic-telescope, electricity,
            titanic, credit-g; regression: california, diamonds) read from ``data_dir``; its files fill
            ``train_path`` (and ``test_path`` when the dataset has an official test split). Give ``dataset: null``
            to use ``train_path`` instead.
        data_dir: folder holding ``<dataset>/`` folders; default ``$TABULARNET_DATA_DIR``, else ``../shared/datasets``.
        train_path: training table (CSV, CSV.gz or Parquet).
        val_path: validation table; without it ``val_fraction`` of the training table is held out (stratified).
        test_path: test table, evaluated with the best checkpoint at the end of ``fit``.
        predict_path: table to predict (``tabularnet predict``); a target column in it is ignored.
        target: name of the label (or, for regression, value) column.
        task: ``classification``, ``regression``, or ``auto``: decided from the training target and said in one
            line (text and booleans are classes; a numeric target with more than 30 distinct values is regression,
            one with fewer is classification, and the line says how to override it). Stored in the checkpoint.
        target_transform: regression only: ``log1p`` models ``log(1 + y)`` (for skewed, non-negative targets such
            as prices; predictions are transformed back), ``none`` the target itself. Either way the model learns
            the target standardised with the training split's mean and standard deviation, and predicts in the
            original units.
        weight_column: name of a column of per-row sample weights (not a feature): the training loss, the
            preprocessing statistics and the validation/test metrics weigh each row by it (a row of integer weight
            ``k`` counts as ``k`` copies; weight 0 leaves the row out). The training table must have it; validation
            and test tables are weighted when they have it; prediction tables need not have it. Weights must be
            finite numbers >= 0, not all zero. ``null``: every row weighs 1.
        val_fraction: share of the training table held out for validation when there is no ``val_path``.
        test_fraction: share of the training table held out for testing when there is no ``test_path`` (0: none).
        categorical: columns to treat as categorical (others are inferred: strings, bools and integer columns with
            at most 10 distinct values are categorical).
        numeric: columns to treat as numeric.
        scaling: numeric scaling: ``standard``, ``quantile`` (rank-Gauss) or ``none``.
        na_values: text values that mean "missing" in any column (compared after stripping spaces; empty fields
            always are); a text column holding only numbers besides them is numeric. ``[]`` keeps every text.
        high_cardinality: categorical columns with more than ``max_categories`` distinct training values (names,
            ticket numbers, ids) are dropped with a warning (``drop``), hashed into ``max_categories`` buckets
            (``hash``), or kept with one embedding row per value (``keep``).
        max_categories: the cardinality above which a categorical column counts as high-cardinality.
        min_frequency: categories seen fewer times in the training split share the embedding of unknown values.
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and prediction (no gradients, so larger is faster).
        seed: seed of the splits and of the training batch order.
        preprocessing_path: take the fitted preprocessing and label classes from this checkpoint instead of fitting
            them on ``train_path`` (set automatically by ``validate``/``test``/``predict`` with ``--ckpt_path``).
        teacher: a teacher for distillation, ``{class_path: tabularnet.models.XGBoostClassifier, init_args: {...}}``
            (any class with ``fit`` and ``predict_proba``). Its logits for the training split are cross-fitted
            (``teacher_folds``) and cached; its own val/test metrics go into ``metrics.json``.
        teacher_logits_path: precomputed teacher logits or probabilities for the rows of ``train_path``
            (``.npy``, CSV or Parquet with one column per class, in the order of the sorted labels).
        teacher_folds: cross-fitting folds: each training row's logits come from a teacher that never saw it.
        teacher_cache_dir: where cross-fitted logits are cached (default: ``<trainer.default_root_dir>/teacher_cache``
            under ``tabularnet fit``, else ``.tabularnet_cache``).
        streaming: stream a Parquet ``train_path`` in row groups instead of reading it whole (for tables larger
            than memory): ``true``, ``false``, or ``null`` to stream when it has more than
            ``streaming_threshold_rows`` rows. Validation and test splits are then carved from it at random (not
            stratified); Parquet ``val_path``/``test_path``/``predict_path`` files stream too. No teacher.
        streaming_threshold_rows: row count above which ``streaming: null`` streams a Parquet file.
        shuffle_buffer: rows held in the streaming shuffle buffer (more rows: better mixing, more memory).
        sample_rows: streaming: the preprocessing (schema, scaling, categories) is fitted on a uniform random
            sample of at most this many training rows.
        device_resident: copy each in-memory split to the training device once and draw the batches there
            (permutation and index slicing on the accelerator): no host-to-device copy per batch. For GPUs,
            when the table fits in GPU memory; on CPU it changes nothing. Not with streaming.
    """

    def __init__(
        self,
        dataset: str | None = None,
        data_dir: str | None = None,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        target: str = "target",
        task: TaskArg = "auto",
        target_transform: TargetTransform = "none",
        weight_column: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        categorical: list[str] | None = None,
        numeric: list[str] | None = None,
        scaling: Scaling = DEFAULT_SCALING,
        na_values: list[str] = list(DEFAULT_NA_VALUES),  # noqa: B006 (jsonargparse shows list defaults as given)
        high_cardinality: HighCardinality = "drop",
        max_categories: int = 100,
        min_frequency: int = 1,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        seed: int = 0,
        preprocessing_path: str | None = None,
        teacher: dict | None = None,
        teacher_logits_path: str | None = None,
        teacher_folds: int = 5,
        teacher_cache_dir: str | None = None,
        streaming: bool | None = None,
        streaming_threshold_rows: int = 5_000_000,
        shuffle_buffer: int = 262_144,
        sample_rows: int = 1_000_000,
        device_resident: bool = False,
    ) -> None:
        super().__init__()  # the next class's in a subclass's MRO (LightningDataModule's in TabularDataModule)
        self._record_arguments({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        if batch_size < 1:
            raise DataError(f"data.batch_size must be positive, however: batch_size={batch_size}")
        if weight_column is not None and weight_column == target:
            raise DataError(f"data.weight_column and data.target name the same column {target!r}")
        if teacher is not None and teacher_logits_path is not None:
            raise DataError("give data.teacher or data.teacher_logits_path, not both")
        if teacher is not None:
            check_teacher(teacher, task)  # fail now, not after reading the data
        check_streaming_options(self.hparams)
        check_task_options(task, target_transform)
        self._task: Task | None = None if task == "auto" else task  # decided from the training target for auto
        # split -> (teacher probabilities, label indices) on val/test, with data.teacher (tabularnet.cli measures them)
        self.teacher_evaluations: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.default_teacher_cache_dir: str | None = None  # set by `tabularnet fit` to <default_root_dir>/...
        self.preprocessor = Preprocessor(
            scaling,
            na_values=na_values,
            high_cardinality=high_cardinality,
            max_categories=max_categories,
            min_frequency=min_frequency,
        )
        self._frames: dict[str, pd.DataFrame] = {}
        self._schema = None  # column roles, inferred from the whole training table
        self._tensors: dict[str, dict[str, torch.Tensor]] = {}
        self.teacher_logits: torch.Tensor | None = None  # (n_train, n_classes), aligned with the train split
        self._teacher_values: np.ndarray | None = None  # given teacher outputs, made logits/targets once fitted
        self._stream_plan: dict[str, tuple[str, RowSplit]] | None = None
        self._checked_weight_files: set[str] = set()  # streamed files whose weight column was validated

    def _record_arguments(self, arguments: dict[str, Any]) -> None:
        """Keep the constructor arguments as :attr:`hparams` (a subclass may record them its own way)."""
        self.hparams = Arguments(arguments)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        train: pd.DataFrame,
        *,
        val: pd.DataFrame | None = None,
        teacher_logits: torch.Tensor | None = None,
        **kwargs,
    ) -> TabularData:
        """A data module over in-memory tables (the Python API's path). ``teacher_logits`` align with ``train``
        rows; when a validation split is carved from ``train`` they are split with it."""
        dm = cls(**kwargs)
        dm._frames["train"] = train.reset_index(drop=True)
        if teacher_logits is not None:  # logits, or a regression teacher's predictions in original units
            dm._frames["train"][TEACHER_ROW] = np.arange(len(train))
            dm._teacher_values = np.asarray(teacher_logits, dtype=np.float64)
        if val is not None:
            dm._frames["val"] = val
        return dm

    # ----------------------------------------------------------------- reading
    def _paths(self) -> dict[str, str | None]:
        return split_paths(self.hparams)

    def _read_labeled_splits(self) -> None:
        """Read train (+ val/test) tables, carving validation and test splits where no file is given."""
        hp, paths = self.hparams, self._paths()
        if "train" not in self._frames:
            if paths["train"] is None:
                raise DataError("no training data: set data.dataset or data.train_path")
            self._frames["train"] = read_table(paths["train"])
        train = self._frames["train"]
        source = paths["train"] or "training data"
        check_training_columns(train, hp, source)
        if hp.teacher_logits_path and self._teacher_values is None:
            self._teacher_values = read_teacher_logits(hp.teacher_logits_path, len(train))
            train = train.assign(**{TEACHER_ROW: np.arange(len(train))})  # before rows without a label go
        if self._task is None:
            self._task = decide_task(train[hp.target].dropna(), hp.task, source=source)
        train, self._schema = clean_training_table(train, hp, source, self._schema, self._task)
        carve_splits(self._frames, train, paths, hp, self._task)

    def _sample_weight(self, frame: pd.DataFrame) -> np.ndarray | None:
        return sample_weights(frame, self.hparams.weight_column)

    def _ensure_fitted(self) -> Preprocessor:
        if self.preprocessor.state is not None:
            return self.preprocessor
        hp = self.hparams
        if hp.preprocessing_path:
            self.load_state_dict(datamodule_state(hp.preprocessing_path))
            return self.preprocessor
        if "train" in self._streams():
            path, rows = self._streams()["train"]
            kwargs = dict(categorical=hp.categorical, numeric=hp.numeric, sample_rows=hp.sample_rows, seed=hp.seed)
            kwargs.update(task=hp.task, target_transform=hp.target_transform)
            return fit_on_sample(
                self.preprocessor, path, rows, target=hp.target, weight_column=hp.weight_column, **kwargs
            )
        self._read_labeled_splits()
        train = self._frames["train"].drop(columns=TEACHER_ROW, errors="ignore")
        source = self._paths()["train"] or "training data"
        classes = None
        if self._task == "classification":
            labeled = [self._frames[s][hp.target] for s in ("train", "val") if s in self._frames]
            classes = np.unique(pd.concat(labeled).to_numpy())
        weights = self._sample_weight(train)
        self.preprocessor.fit(
            train, self._schema, classes=classes, source=source, sample_weight=weights, task=self._task,
            target_transform=hp.target_transform,
        )  # fmt: skip
        return self.preprocessor

    # ------------------------------------------------------- data-derived sizes
    @property
    def n_num_features(self) -> int:
        return self._ensure_fitted().n_num_features

    @property
    def cat_cardinalities(self) -> list[int]:
        return self._ensure_fitted().cat_cardinalities

    @property
    def task_type(self) -> Task:
        """``classification`` or ``regression`` (decided from the training target for ``task: auto``)."""
        return self._ensure_fitted().task

    @property
    def target_scaling(self) -> dict | None:
        """A regression target's scaling ``{"transform", "mean", "std"}`` (the model predicts in original units)."""
        return self._ensure_fitted().target_scaling

    @property
    def n_classes(self) -> int:
        """Number of classes; 1 for regression (the network's one output)."""
        preprocessor = self._ensure_fitted()
        return 1 if preprocessor.task == "regression" else len(preprocessor.classes)

    @property
    def classes(self) -> list | None:
        """The class labels; ``None`` for regression."""
        preprocessor = self._ensure_fitted()
        return None if preprocessor.task == "regression" else preprocessor.classes

    @property
    def class_counts(self) -> list[int] | None:
        """Training rows per class (for ``class_weight='balanced'``), in the order of :attr:`classes`."""
        return self._ensure_fitted().class_counts

    # ----------------------------------------------------------------- tensors
    def split_tensors(self, split: str) -> dict[str, torch.Tensor] | None:
        """Preprocessed tensors of ``split`` (``None`` when the split has no data), built once and cached."""
        if split in self._tensors:
            return self._tensors[split]
        if split in self._streams():
            raise RuntimeError(f"the {split} split streams from {self._streams()[split][0]}: it has no tensors")
        preprocessor = self._ensure_fitted()
        frame = self._frame(split)
        if frame is None:
            return None
        source = self._paths()[split] or f"{split} data"
        tensors = preprocessor.transform(frame, source=source)
        target = self.hparams.target
        if split != "predict":
            tensors["y"] = preprocessor.encode_targets(frame[target], source=source)
            weights = self._sample_weight(frame)
            if weights is not None:  # travels in the batch: the loss and the metrics weigh rows by it
                tensors["weight"] = torch.tensor(weights, dtype=torch.float32)
        if split == "train" and self._teacher_values is not None and self.teacher_logits is None:
            targets = student_targets(self._teacher_values, self.preprocessor.target_scaling)
            self.teacher_logits = torch.as_tensor(targets, dtype=torch.float32)
        if split == "train" and self.hparams.teacher is not None and self.teacher_logits is None:
            self._fit_teacher(frame)
        if split == "train" and self.teacher_logits is not None:
            tensors["teacher_logits"] = self.teacher_logits[torch.as_tensor(frame[TEACHER_ROW].to_numpy().copy())]
        self._tensors[split] = tensors
        return tensors

    def _fit_teacher(self, train: pd.DataFrame) -> None:
        """Cross-fit the teacher on the training split (or read its cached logits) and measure it on val/test."""
        hp, features = self.hparams, self.preprocessor.schema.features

        def evaluations() -> dict[str, tuple]:
            splits = ("val", "test")
            return {s: (f[features], f[hp.target].to_numpy()) for s in splits if (f := self._frame(s)) is not None}

        logits, self.teacher_evaluations = cached_teacher_logits(
            hp.teacher, train, self.classes, evaluations, features=features, target=hp.target,
            weight_column=hp.weight_column, sample_weight=self._sample_weight(train), folds=hp.teacher_folds,
            seed=hp.seed, cache_dir=Path(hp.teacher_cache_dir or self.default_teacher_cache_dir or ".tabularnet_cache"),
        )  # fmt: skip
        train[TEACHER_ROW] = np.arange(len(train))
        targets = student_targets(logits, self.preprocessor.target_scaling)
        self.teacher_logits = torch.as_tensor(targets, dtype=torch.float32)

    def _frame(self, split: str) -> pd.DataFrame | None:
        if "train" in self._streams() and split in ("train", "val", "test") and split not in self._frames:
            path = self._paths()[split] if split != "train" else None  # a split without its own file is streamed
            self._frames[split] = (
                read_split_table(split, path, self.hparams) if path and split not in self._streams() else None
            )
        if split not in self._frames:
            if split == "predict":
                path = self.hparams.predict_path
                if path is None:
                    raise DataError("nothing to predict: set data.predict_path")
                self._frames["predict"] = read_split_table("predict", path, self.hparams)
            elif self.preprocessor.state is not None and self._paths().get(split):
                self._frames[split] = read_split_table(split, self._paths()[split], self.hparams)
            elif split in ("train", "val", "test") and (not self.hparams.preprocessing_path or self._carved(split)):
                # NOTE: a split carved from the training file (val_fraction, test_fraction) is carved again, with
                # the run's seed, also when the preprocessing comes from a checkpoint (`tabularnet test --ckpt_path`)
                self._read_labeled_splits()
        frame = self._frames.get(split)
        if frame is not None and split in ("val", "test") and self.hparams.target not in frame.columns:
            raise DataError(f"{self._paths()[split] or split}: target column {self.hparams.target!r} not found")
        return frame

    def _carved(self, split: str) -> bool:
        """Whether ``split`` is cut from the training data (no file of its own, a positive fraction)."""
        fraction = {"val": self.hparams.val_fraction, "test": self.hparams.test_fraction}.get(split, 0.0)
        return fraction > 0 and not self._paths().get(split) and self._paths()["train"] is not None

    # --------------------------------------------------------------- streaming
    def _streams(self) -> dict[str, tuple[str, RowSplit]]:
        """The splits streamed from Parquet, ``split -> (file, rows)`` (see tabularnet.data.streaming_plan)."""
        if self._stream_plan is None:
            fitting = not self.hparams.preprocessing_path and "train" not in self._frames
            self._stream_plan = streamed_splits(self._paths(), self.hparams, fitting=fitting)
        return self._stream_plan

    def has_split(self, split: str) -> bool:
        """Whether ``split`` has data, streamed or in memory."""
        return split in self._streams() or self.split_tensors(split) is not None

    def _resident_device(self) -> torch.device | None:
        """The device the loaders keep their tables on (``device_resident``). ``None`` here: the tables stay where
        they are and the plain-PyTorch trainer moves them (``TensorBatchLoader.to``); a subclass that knows its
        trainer's device overrides this."""
        return None

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"preprocessing": self._ensure_fitted().state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.preprocessor.load_state_dict(state_dict["preprocessing"])
        self._task = self.preprocessor.task
        self._tensors.clear()
