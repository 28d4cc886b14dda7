"""The training recipe's knobs: dict specs as users write them (Python or YAML) and validated dataclasses.

The dict forms keep the original API (``mixup={'enabled': True, 'alpha': 0.2}``); their TypedDicts, generated
from the dataclasses, give jsonargparse their keys and types, so YAML typos fail at parse time.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal, Optional, TypedDict, Union

from tabularnet.data.schema import check_known_keys


def _from_spec(cls, spec: Optional[dict], option: str, renames: dict[str, str] | None = None):
    """Build dataclass ``cls`` from a user dict, naming ``option`` and the key in every error."""
    if spec is None:
        return cls()
    if not isinstance(spec, dict):
        raise ValueError(f"{option} must be a dict, however: {option}={spec!r}")
    renames = renames or {}
    check_known_keys(spec, {renames.get(f.name, f.name) for f in fields(cls)}, option)
    inverse = {v: k for k, v in renames.items()}
    config = cls(**{inverse.get(k, k): v for k, v in spec.items()})
    config.validate(option)
    return config


@dataclass
class OptimizerConfig:
    name: Literal["Adam", "AdamW"] = "AdamW"
    lr: float = 1e-3
    weight_decay: Optional[float] = None  # None: the estimator's top-level ``weight_decay``
    betas: tuple[float, float] = (0.9, 0.999)
    fused: Optional[bool] = None  # None: the fused kernel where the parameters' device supports it

    def validate(self, option: str) -> None:
        if self.fused not in (None, True, False):
            raise ValueError(f"{option}: fused must be true, false or null, however: fused={self.fused!r}")
        if self.name.lower() not in ("adam", "adamw"):
            raise ValueError(f"{option}: name must be 'Adam' or 'AdamW', however: name={self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"{option}: lr must be positive, however: lr={self.lr}")
        self.betas = tuple(self.betas)


@dataclass
class SchedulerConfig:
    name: Literal["cosine", "constant"] = "constant"
    warmup_proportion: float = 0.0

    def validate(self, option: str) -> None:
        if self.name not in ("cosine", "constant"):
            raise ValueError(f"{option}: name must be 'cosine' or 'constant', however: name={self.name!r}")
        if not 0 <= self.warmup_proportion < 1:
            raise ValueError(f"{option}: warmup_proportion must be in [0, 1), however: {self.warmup_proportion}")


@dataclass
class MixUpConfig:
    enabled: bool = False
    alpha: float = 0.2

    def validate(self, option: str) -> None:
        if self.enabled and not self.alpha >= 0:
            raise ValueError(f"{option}: alpha must be non-negative, however: alpha={self.alpha}")


@dataclass
class NoiseConfig:
    enabled: bool = False
    std: float = 0.1

    def validate(self, option: str) -> None:
        if self.enabled and not self.std >= 0:
            raise ValueError(f"{option}: std must be non-negative, however: std={self.std}")


@dataclass
class DistillationConfig:
    enabled: bool = False
    lambda_: float = 0.7  # written ``lambda`` in dicts and YAML
    temperature: float = 2.0
    consistency: float = 0.0

    def validate(self, option: str) -> None:
        if not 0 <= self.lambda_ <= 1:
            raise ValueError(f"{option}: lambda must be in [0, 1], however: lambda={self.lambda_}")
        if not self.temperature > 0:
            raise ValueError(f"{option}: temperature must be positive, however: temperature={self.temperature}")
        if not self.consistency >= 0:
            raise ValueError(f"{option}: consistency must be non-negative, however: {self.consistency}")


def spec_type(config_class: type, renames: dict[str, str] | None = None) -> type:
    """The dict form of a recipe dataclass (``{name: AdamW, lr: 0.001}``) as a TypedDict for jsonargparse: its keys
    and types come from the dataclass's fields (so YAML typos fail at parse time), tuples written as lists."""
    renames = renames or {}
    hints = typing.get_type_hints(config_class)
    keys = {}
    for f in fields(config_class):
        hint = hints[f.name]
        keys[renames.get(f.name, f.name)] = list[typing.get_args(hint)[0]] if typing.get_origin(hint) is tuple else hint
    return TypedDict(config_class.__name__.replace("Config", "Spec"), keys, total=False)


DISTILLATION_RENAMES = {"lambda_": "lambda"}  # ``lambda`` is a Python keyword
OptimizerSpec = spec_type(OptimizerConfig)
SchedulerSpec = spec_type(SchedulerConfig)
MixUpSpec = spec_type(MixUpConfig)
NoiseSpec = spec_type(NoiseConfig)
DistillationSpec = spec_type(DistillationConfig, DISTILLATION_RENAMES)
SchedulerArg = Union[SchedulerSpec, Literal["cosine", "constant"], None]
ClassWeightArg = Union[Literal["balanced"], dict[str, float], None]


def resolve_class_weight(
    class_weight, classes: Optional[Sequence] = None, class_counts: Optional[Sequence[float]] = None
) -> Optional[tuple[float, ...]]:
    """Per-class loss weights in the order of ``classes`` (scikit-learn's convention), or ``None``.

    ``"balanced"``: ``n_samples / (n_classes * count_c)`` from the training counts (a class with no training rows
    counts as one); with sample weights the counts are the classes' total weights. A dict maps original labels
    (compared as text, so ``1`` and ``"1"`` agree) to weights; labels it leaves out weigh 1.
    """
    if class_weight is None:
        return None
    if classes is None:
        raise ValueError("class_weight needs the class labels (linked from the data module as classes)")
    if class_weight == "balanced":
        if class_counts is None or len(class_counts) != len(classes):
            raise ValueError("class_weight='balanced' needs the training class counts (class_counts)")
        counts = [float(c) if c > 0 else 1.0 for c in class_counts]  # row counts, or total sample weights
        return tuple(sum(class_counts) / (len(classes) * c) for c in counts)
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be 'balanced', a dict {{label: weight}} or None, however: {class_weight}")
    by_text = {str(label): label for label in classes}
    unknown = [key for key in class_weight if str(key) not in by_text]
    if unknown:
        raise ValueError(f"class_weight: unknown label(s) {', '.join(map(repr, unknown))} (classes: {list(classes)})")
    weights = {str(key): float(value) for key, value in class_weight.items()}
    if any(not w >= 0 for w in weights.values()):
        raise ValueError(f"class_weight: weights must be non-negative, however: {class_weight}")
    return tuple(weights.get(str(label), 1.0) for label in classes)


@dataclass
class Recipe:
    """Everything about how a network is trained, independent of the network and of the driver."""

    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    mixup: MixUpConfig = field(default_factory=MixUpConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    class_weight: Optional[tuple[float, ...]] = None  # per class index; see resolve_class_weight
    task_name: Literal["classification", "regression"] = "classification"
    loss: Optional[str] = None  # None: the task's default (cross-entropy; mse for regression)

    @functools.cached_property
    def task(self):
        """The task's loss terms and outputs (:mod:`tabularnet.training.tasks`), built once (the training step reads
        it); options that do not apply to the task (label smoothing or class weights for regression, a regression
        loss for classification) raise."""
        from tabularnet.training.tasks import make_task

        return make_task(
            self.task_name, loss=self.loss, label_smoothing=self.label_smoothing, class_weight=self.class_weight
        )

    @property
    def effective_weight_decay(self) -> float:
        wd = self.optimizer.weight_decay
        return self.weight_decay if wd is None else wd

    @classmethod
    def from_options(cls, options: Optional[dict] = None, /, **kwargs) -> Recipe:
        """Validate the user-facing recipe options (dicts as in the original API, see
        :class:`~tabularnet.training.options.RecipeOptions`) into a Recipe, from a dict of options (other keys, a
        network's options say, are not read) or keywords; ``class_weight`` is resolved against the data's
        ``classes`` and training ``class_counts`` (options too)."""
        check_known_keys(kwargs, [*(f.name for f in fields(cls)), "classes", "class_counts", "task_type"], "recipe")
        options = {**(options or {}), **kwargs}
        label_smoothing, weight_decay = options.get("label_smoothing", 0.0), options.get("weight_decay", 0.0)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), however: label_smoothing={label_smoothing}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, however: weight_decay={weight_decay}")
        scheduler = options.get("scheduler")
        if isinstance(scheduler, str):
            scheduler = {"name": scheduler}
        recipe = cls(
            task_name=options.get("task_type") or "classification",
            loss=options.get("loss"),
            label_smoothing=label_smoothing,
            weight_decay=weight_decay,
            optimizer=_from_spec(OptimizerConfig, options.get("optimizer"), "optimizer"),
            scheduler=_from_spec(SchedulerConfig, scheduler, "scheduler"),
            mixup=_from_spec(MixUpConfig, options.get("mixup"), "mixup"),
            noise=_from_spec(NoiseConfig, options.get("noise"), "noise"),
            distillation=_from_spec(
                DistillationConfig, options.get("distillation"), "distillation", DISTILLATION_RENAMES
            ),
            class_weight=None
            if options.get("task_type") == "regression"
            else resolve_class_weight(options.get("class_weight"), options.get("classes"), options.get("class_counts")),
        )
        if options.get("task_type") == "regression" and options.get("class_weight") is not None:
            raise ValueError("class_weight is for classification, however: it is set and the task is regression")
        recipe.task  # noqa: B018 (validates the task's options now, not at the first step)
        return recipe
