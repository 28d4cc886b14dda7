"""The training recipe's knobs: dict specs as users write them (Python or YAML) and validated dataclasses.

The dict forms keep the original API (``mixup={'enabled': True, 'alpha': 0.2}``); the TypedDicts give
jsonargparse their keys and types, so YAML typos fail at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal, Optional, TypedDict, Union

from tabularnet.data.schema import check_known_keys


class OptimizerSpec(TypedDict, total=False):
    name: Literal["Adam", "AdamW"]
    lr: float
    weight_decay: float
    betas: list[float]
    fused: Optional[bool]


class SchedulerSpec(TypedDict, total=False):
    name: Literal["cosine", "constant"]
    warmup_proportion: float


class MixUpSpec(TypedDict, total=False):
    enabled: bool
    alpha: float


class NoiseSpec(TypedDict, total=False):
    enabled: bool
    std: float


DistillationSpec = TypedDict(
    "DistillationSpec",
    {"enabled": bool, "lambda": float, "temperature": float, "consistency": float},
    total=False,
)
SchedulerArg = Union[SchedulerSpec, Literal["cosine", "constant"], None]
ClassWeightArg = Union[Literal["balanced"], dict[str, float], None]


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

    @property
    def effective_weight_decay(self) -> float:
        wd = self.optimizer.weight_decay
        return self.weight_decay if wd is None else wd

    @classmethod
    def from_options(
        cls,
        *,
        label_smoothing: float = 0.0,
        weight_decay: float = 0.0,
        optimizer: Optional[dict] = None,
        scheduler: SchedulerArg = None,
        mixup: Optional[dict] = None,
        noise: Optional[dict] = None,
        distillation: Optional[dict] = None,
        class_weight: ClassWeightArg = None,
        classes: Optional[Sequence] = None,
        class_counts: Optional[Sequence[float]] = None,
    ) -> Recipe:
        """Validate the user-facing options (dicts as in the original API) into a Recipe; ``class_weight`` is
        resolved against the data's ``classes`` and training ``class_counts``."""
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), however: label_smoothing={label_smoothing}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, however: weight_decay={weight_decay}")
        if isinstance(scheduler, str):
            scheduler = {"name": scheduler}
        return cls(
            label_smoothing=label_smoothing,
            weight_decay=weight_decay,
            optimizer=_from_spec(OptimizerConfig, optimizer, "optimizer"),
            scheduler=_from_spec(SchedulerConfig, scheduler, "scheduler"),
            mixup=_from_spec(MixUpConfig, mixup, "mixup"),
            noise=_from_spec(NoiseConfig, noise, "noise"),
            distillation=_from_spec(DistillationConfig, distillation, "distillation", {"lambda_": "lambda"}),
            class_weight=resolve_class_weight(class_weight, classes, class_counts),
        )
