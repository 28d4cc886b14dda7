"""The one declaration of every model and recipe option: documented dataclass fields.

The LightningModules (and so the command line, YAML configs and ``--help``), the scikit-learn estimators and
README's configuration reference (``make docs``) all read these fields; :func:`with_options` gives a class an
``__init__`` whose signature and ``Args:`` docstring are made from them. Adding an option to a network means a
field here, the parameter in the ``nn`` module, and a test (the network is built from the options it accepts).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, Optional

from tabularnet.nn.layers import Activation
from tabularnet.training.config import (
    ClassWeightArg,
    DistillationSpec,
    MixUpSpec,
    NoiseSpec,
    OptimizerSpec,
    SchedulerArg,
)


def option(default: Any = MISSING, doc: str = "", *, type: Any = None) -> Any:
    """A documented option; ``type`` overrides the annotation where the default's Python type is narrower (a tuple
    default of an option written as a YAML list)."""
    return field(default=default, metadata={"doc": doc, "type": type})


@dataclass
class LinkedOptions:
    """Sizes and labels that come from the data (linked from the data module in the CLI; never typed by users)."""

    n_num_features: int = option(doc="numeric inputs (linked from the data module).")
    cat_cardinalities: list[int] = option(doc="categorical embedding sizes (linked from the data module).")
    n_classes: int = option(doc="number of classes, 1 for regression (linked from the data module).")
    classes: Optional[list] = option(None, "the original class labels (linked from the data module).")
    class_counts: Optional[list[float]] = option(
        None, "training rows per class, their total sample weight with weights (linked from the data module)."
    )
    task_type: Literal["classification", "regression"] = option(
        "classification", "the learning task (linked from the data module, which decides it: ``data.task``)."
    )
    target_scaling: Optional[dict] = option(
        None,
        "regression: the target's ``{transform, mean, std}`` on the training split (linked from the data module); "
        "the model's predictions are turned back into original units with it.",
    )


@dataclass
class MLPOptions:
    """The MLP's architecture (:class:`tabularnet.nn.MLP`)."""

    hidden_dims: tuple = option((256, 256), "width of each hidden layer.", type=list[int])
    activation: Activation = option("relu", "``relu``, ``gelu``, ``geglu`` or ``reglu``.")
    dropout: float = option(0.1, "dropout after each hidden layer.")
    norm: Literal["none", "layer", "batch"] = option(
        "none", "normalisation of each hidden layer's pre-activations: ``none``, ``layer`` or ``batch``."
    )
    d_cat_embedding: int = option(8, "size of each categorical embedding.")
    num_embedding: Literal["none", "linear", "plr", "ple"] = option(
        "ple",
        "numeric inputs fed as scaled values (``none``) or embedded first: ``linear``, ``plr`` (periodic) or "
        "``ple`` (piecewise-linear over quantile bins of the training data). The default ``ple`` was chosen by "
        "validation accuracy across the shared datasets (README, how the defaults were chosen).",
    )
    d_num_embedding: int = option(24, "size of each numeric embedding.")
    frequency_scale: float = option(0.1, "PLR frequency initialisation scale.")
    n_bins: int = option(32, "PLE bins per numeric feature.")
    k: int = option(
        1,
        "ensemble members (TabM, Gorishniy et al., 2025): 1 is the plain MLP; k > 1 trains k MLPs at once that share "
        "the weights (see ``ensemble``), each with its own output head, on the mean of their losses, and predicts "
        "their mean probabilities (the paper uses 32).",
    )
    ensemble: Literal["tabm", "mini"] = option(
        "tabm",
        "how the k members share the MLP: ``tabm`` (BatchEnsemble: every linear layer shared, with input and output "
        "scalings and biases of each member's own) or ``mini`` (TabM mini: one scaling of the input per member, all "
        "layers shared).",
    )


@dataclass
class TransformerOptions:
    """The FT-Transformer's architecture (:class:`tabularnet.nn.FTTransformer`)."""

    d_model: int = option(64, "token size.")
    nhead: int = option(8, "attention heads (must divide ``d_model``).")
    num_layers: int = option(3, "transformer blocks.")
    dropout: float = option(0.1, "dropout in attention, feed-forward and residual branches.")
    activation: Activation = option("reglu", "feed-forward activation (``reglu``, ``geglu``, ``relu``, ``gelu``).")
    num_embedding: Literal["linear", "plr", "ple"] = option(
        "linear", "numeric feature tokens: ``linear``, ``plr`` (periodic) or ``ple`` (piecewise-linear)."
    )
    n_bins: int = option(32, "PLE bins per numeric feature.")


@dataclass
class RecipeOptions:
    """How any network is trained (both drivers), and its calibration."""

    loss: Optional[Literal["cross_entropy", "mse", "huber"]] = option(
        None,
        "the label loss: ``cross_entropy`` (classification), ``mse`` or ``huber`` (regression, on the standardised "
        "target; Huber's delta is 1 standard deviation); ``null``: the task's default (cross-entropy, mse).",
    )
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy, in [0, 1) (classification).")
    weight_decay: float = option(
        0.0,
        "AdamW/Adam weight decay on weight matrices (not on biases, norms, embeddings); an "
        "``optimizer.weight_decay`` overrides it.",
    )
    optimizer: Optional[OptimizerSpec] = option(
        None,
        "``{name: Adam|AdamW, lr: float, weight_decay: float, betas: [b1, b2], fused: bool}``; default AdamW, "
        "lr 1e-3; ``fused`` (default: where supported) uses torch's one-kernel update.",
    )
    scheduler: SchedulerArg = option(
        None,
        "``{name: cosine|constant, warmup_proportion: float}`` (or just the name): linear warmup over that share "
        "of all steps, then cosine to zero (``cosine``) or constant; default constant, no warmup.",
    )
    mixup: Optional[MixUpSpec] = option(
        None, "``{enabled: bool, alpha: float}``: MixUp with lambda ~ Beta(alpha, alpha) per batch."
    )
    noise: Optional[NoiseSpec] = option(None, "``{enabled: bool, std: float}``: Gaussian noise on numeric inputs.")
    distillation: Optional[DistillationSpec] = option(
        None,
        "``{enabled: bool, lambda: float, temperature: float, consistency: float}``: loss = (1 - lambda) CE + "
        "lambda T^2 KL(teacher_T || student_T) + consistency * two-view penalty; needs teacher logits. "
        "Regression: (1 - lambda) L(y) + lambda L(teacher's prediction), L the ``loss``; no temperature.",
    )
    class_weight: ClassWeightArg = option(
        None,
        "per-class weights of the label loss: ``balanced`` (n_samples / (n_classes * count) on the training "
        "split), or ``{label: weight}`` keyed by the original labels (others weigh 1); ``null``: none. "
        "``val_loss`` stays the log loss without class weights. Classification only.",
    )
    calibrate: bool = option(
        False,
        "after training, fit one temperature T on the validation split (temperature scaling: the probabilities "
        "become softmax(logits / T)); T is stored with the model and used by every prediction. Classification only.",
    )


@dataclass
class LightningOptions:
    """Options of the LightningModules only (the estimators have them in their ``training`` dict)."""

    compile: bool = option(
        False,
        "train through ``torch.compile(net)`` (the stored weights and checkpoints are the plain network's). "
        "Opt-in: it pays a one-time compilation (~15 s) and, measured on a 2-core CPU, made the 256-256 MLP's "
        "step 2x slower; it can pay off on GPUs with larger networks (see README, speed).",
    )


RECIPE_FIELDS = tuple(f.name for f in fields(RecipeOptions) if f.name != "calibrate")  # what Recipe is made of


def option_fields(*option_classes: type) -> list:
    """The fields of ``option_classes``, in order; a name declared twice is an error."""
    seen, result = set(), []
    for cls in option_classes:
        for f in fields(cls):
            if f.name in seen:
                raise TypeError(f"option {f.name!r} is declared twice ({[c.__name__ for c in option_classes]})")
            seen.add(f.name)
            result.append(f)
    return result


def _plain_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def with_options(*option_classes: type, init: str = "_init_options", list_defaults: bool = False):
    """Class decorator: an ``__init__(self, <every field of option_classes>)`` that binds the arguments against
    that signature (positional or keyword, unknown names a TypeError, defaults filled in) and calls
    ``self.<init>(**arguments)``; the class docstring gets an ``Args:`` entry per option (read by ``--help`` and
    ``make docs``). ``list_defaults``: show tuple defaults as lists (jsonargparse's YAML view)."""
    option_list = option_fields(*option_classes)

    def decorate(cls: type) -> type:
        hints: dict[str, Any] = {}
        for option_class in option_classes:
            hints.update(typing.get_type_hints(option_class))
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for f in option_list:
            default = inspect.Parameter.empty if f.default is MISSING else f.default
            if list_defaults:
                default = _plain_default(default)
            annotation = f.metadata.get("type") or hints[f.name]
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
            parameters.append(inspect.Parameter(f.name, kind, default=default, annotation=annotation))
        signature = inspect.Signature(parameters)

        def __init__(self, *args, **kwargs) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            del arguments["self"]
            getattr(self, init)(**arguments)

        __init__.__signature__ = signature
        __init__.__annotations__ = {p.name: p.annotation for p in parameters[1:]}
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__module__ = cls.__module__
        cls.__init__ = __init__
        args = "".join(f"    {f.name}: {' '.join(f.metadata['doc'].split())}\n" for f in option_list)
        cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\nArgs:\n{args}"
        cls.option_names = tuple(f.name for f in option_list)
        return cls

    return decorate


def defaults(*option_classes: type) -> dict[str, Any]:
    """``{name: default}`` of the options of ``option_classes`` that have one (tuples as lists)."""
    return {f.name: _plain_default(f.default) for f in option_fields(*option_classes) if f.default is not MISSING}


def plain(value: Any) -> Any:
    """Options as plain containers (tuples to lists) for hyperparameters and weights_only checkpoints."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build_network(network_class: type, options: dict) -> Any:
    """``network_class`` built from the options its constructor accepts, ``n_classes`` as ``d_out``."""
    accepted = inspect.signature(network_class).parameters
    return network_class(d_out=options["n_classes"], **{k: v for k, v in options.items() if k in accepted})


def check_linked_task(options: dict) -> None:
    """The data-linked sizes agree with the task; options that cannot apply to regression are one-line errors."""
    n_classes, classes, task = options["n_classes"], options["classes"], options.get("task_type", "classification")
    if task == "regression":
        if n_classes != 1:
            raise ValueError(f"a regression model has one output, however: n_classes={n_classes}")
        if options.get("calibrate"):
            raise ValueError("calibrate (temperature scaling) is for classification, however: the task is regression")
        if options.get("target_scaling") is None:
            raise ValueError("a regression model needs target_scaling (linked from the data module)")
        return
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, however: n_classes={n_classes}")
    if classes is not None and len(classes) != n_classes:
        raise ValueError(f"classes has {len(classes)} labels but n_classes={n_classes}")
