"""Property tests of the training math (objectives and schedule) shared by both trainers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tabularnet.nn import MLP
from tabularnet.training.config import Recipe, SchedulerConfig, resolve_class_weight
from tabularnet.training.objectives import (
    AugmentationRNG,
    add_noise,
    distillation_loss,
    label_loss,
    mix,
    sample_mixup,
    training_loss,
)
from tabularnet.training.optim import lr_factor, make_optimizer, parameter_groups


def batch(n: int = 64, n_classes: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x_num": torch.randn(n, 5, generator=g),
        "x_cat": torch.randint(0, 4, (n, 2), generator=g),
        "y": torch.randint(0, n_classes, (n,), generator=g),
        "teacher_logits": torch.randn(n, n_classes, generator=g) * 3,
    }


def net(n_classes: int = 3) -> MLP:
    torch.manual_seed(0)
    return MLP(n_num_features=5, cat_cardinalities=[4, 4], d_out=n_classes, hidden_dims=[16], dropout=0.0)


@pytest.mark.parametrize("alpha", [0.0, 1e-6])
def test_mixup_with_vanishing_alpha_is_identity(alpha):
    x = batch()["x_num"]
    lam, perm = sample_mixup(len(x), alpha, AugmentationRNG(0))
    assert lam >= 0.5
    torch.testing.assert_close(mix(x, lam, perm), x, atol=1e-5, rtol=0)


def test_mixup_mixes_towards_a_permuted_partner():
    x = batch()["x_num"]
    lam, perm = sample_mixup(len(x), 1.0, AugmentationRNG(3))
    assert 0.5 <= lam < 1.0
    torch.testing.assert_close(mix(x, lam, perm), lam * x + (1 - lam) * x[perm])


def test_noise_with_zero_std_is_identity_and_otherwise_has_that_std():
    x = torch.zeros(20000, 3)
    assert add_noise(x, 0.0, AugmentationRNG(0)) is x
    assert add_noise(x, 0.5, AugmentationRNG(0)).std().item() == pytest.approx(0.5, rel=0.02)


def test_all_augmentations_off_is_plain_cross_entropy():
    b, model = batch(), net()
    recipe = Recipe.from_options(mixup={"enabled": True, "alpha": 0.0}, noise={"enabled": True, "std": 0.0})
    out = training_loss(model, b, recipe, AugmentationRNG(0))
    torch.testing.assert_close(out.loss, F.cross_entropy(model(b["x_num"], b["x_cat"]), b["y"]))


def test_label_smoothing_is_applied():
    b, model = batch(), net()
    out = training_loss(model, b, Recipe.from_options(label_smoothing=0.2), AugmentationRNG(0))
    expected = F.cross_entropy(model(b["x_num"], b["x_cat"]), b["y"], label_smoothing=0.2)
    torch.testing.assert_close(out.loss, expected)


def test_distillation_with_zero_lambda_equals_plain_ce():
    b, model = batch(), net()
    plain = training_loss(model, b, Recipe.from_options(label_smoothing=0.1), AugmentationRNG(0)).loss
    distill = Recipe.from_options(
        label_smoothing=0.1, distillation={"enabled": True, "lambda": 0.0, "temperature": 3.0}
    )
    torch.testing.assert_close(training_loss(model, b, distill, AugmentationRNG(0)).loss, plain)


def test_distillation_with_full_lambda_is_the_scaled_kl():
    b, model = batch(), net()
    recipe = Recipe.from_options(distillation={"enabled": True, "lambda": 1.0, "temperature": 2.0})
    logits = model(b["x_num"], b["x_cat"])
    p_teacher = F.softmax(b["teacher_logits"] / 2, -1)
    kl = (p_teacher * (p_teacher.log() - F.log_softmax(logits / 2, -1))).sum(-1).mean()
    torch.testing.assert_close(training_loss(model, b, recipe, AugmentationRNG(0)).loss, 4 * kl)


def test_t_squared_keeps_the_distillation_gradient_stable_across_temperatures():
    student = torch.randn(256, 5, generator=torch.Generator().manual_seed(1))
    teacher = torch.randn(256, 5, generator=torch.Generator().manual_seed(2))
    norms, unscaled = [], []
    for t in (2.0, 4.0, 8.0, 16.0):
        logits = student.clone().requires_grad_()
        distillation_loss(logits, teacher, t).backward()
        norms.append(logits.grad.norm().item())
        unscaled.append(norms[-1] / t**2)
    assert max(norms) / min(norms) < 1.5  # with T^2: roughly constant
    assert max(unscaled) / min(unscaled) > 20  # without it the gradient would shrink ~1/T^2


def test_consistency_penalty_is_the_mean_squared_distance_of_two_views():
    """loss(gamma) - loss(0) = gamma * mean_b ||softmax(s_b) - softmax(s'_b)||^2, s' the second noisy view."""
    b, model = batch(), net()  # no dropout: the two views differ by their noise only
    base = {"enabled": True, "lambda": 0.5, "temperature": 2.0}
    noise = {"enabled": True, "std": 0.3}
    without = training_loss(model, b, Recipe.from_options(noise=noise, distillation=base), AugmentationRNG(0)).loss
    recipe = Recipe.from_options(noise=noise, distillation={**base, "consistency": 10.0})
    with_penalty = training_loss(model, b, recipe, AugmentationRNG(0)).loss
    rng = AugmentationRNG(0)  # the same streams: the first view's noise, then the second view's
    first, second = (model(add_noise(b["x_num"], 0.3, rng), b["x_cat"]) for _ in range(2))
    penalty = (first.softmax(-1) - second.softmax(-1)).pow(2).sum(-1).mean()
    assert penalty > 1e-4  # the views differ
    assert (with_penalty - without).item() == pytest.approx(10.0 * penalty.item(), rel=1e-4)


def test_distillation_without_teacher_logits_is_a_clear_error():
    b = {k: v for k, v in batch().items() if k != "teacher_logits"}
    recipe = Recipe.from_options(distillation={"enabled": True})
    with pytest.raises(ValueError, match="teacher"):
        training_loss(net(), b, recipe, AugmentationRNG(0))


def test_schedule_values_are_as_documented():
    cosine = SchedulerConfig(name="cosine", warmup_proportion=0.1)
    total = 100  # 10 warmup steps
    assert lr_factor(0, total_steps=total, config=cosine) == pytest.approx(0.1)
    assert lr_factor(9, total_steps=total, config=cosine) == pytest.approx(1.0)
    assert lr_factor(10, total_steps=total, config=cosine) == pytest.approx(1.0)
    middle = 10 + 89 / 2
    assert lr_factor(int(middle), total_steps=total, config=cosine) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * int(middle - 10) / 89))
    )
    assert lr_factor(99, total_steps=total, config=cosine) == pytest.approx(0.0, abs=1e-12)
    constant = SchedulerConfig(name="constant")
    assert {lr_factor(s, total_steps=total, config=constant) for s in range(100)} == {1.0}


def test_no_weight_decay_on_biases_norms_and_embeddings():
    from tabularnet.nn import FTTransformer

    model = FTTransformer(n_num_features=3, cat_cardinalities=[5], d_out=2, d_model=8, nhead=2, num_layers=1)
    decay, rest = parameter_groups(model, 0.1)
    decayed = {id(p) for p in decay["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names and all(name.endswith("weight") and "norm" not in name and "tokenizer" not in name for name in names)
    assert rest["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    optimizer = make_optimizer(model, Recipe.from_options(weight_decay=0.1, optimizer={"name": "Adam", "lr": 0.01}))
    assert isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW)


def test_fused_optimizer_by_default_and_same_update_as_the_loop():
    from tabularnet.nn import MLP

    def trained(fused):
        torch.manual_seed(0)
        net = MLP(n_num_features=3, cat_cardinalities=[4], d_out=2, hidden_dims=[8])
        optimizer = make_optimizer(net, Recipe.from_options(weight_decay=0.1, optimizer={"fused": fused}))
        x, c, y = torch.randn(32, 3), torch.randint(0, 4, (32, 1)), torch.randint(0, 2, (32,))
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x, c), y).backward()
            optimizer.step()
        return optimizer, torch.cat([p.detach().flatten() for p in net.parameters()])

    auto, auto_weights = trained(None)
    loop, loop_weights = trained(False)
    assert auto.defaults["fused"] is True and not loop.defaults["fused"]
    torch.testing.assert_close(auto_weights, loop_weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optimizer": {"name": "SGD"}}, "optimizer: name must be"),
        ({"optimizer": {"lrr": 1}}, "optimizer: unknown key"),
        ({"optimizer": {"fused": "yes"}}, "optimizer: fused must be"),
        ({"distillation": {"lambda": 2}}, "distillation: lambda must be in"),
        ({"scheduler": {"name": "cosine", "warmup_proportion": 1.5}}, "warmup_proportion"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_recipe_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        Recipe.from_options(**options)


# ------------------------------------------------------------------------------------------------- class weights
def test_weighted_label_loss_is_the_weighted_mean_of_smoothed_cross_entropy():
    b = batch()
    logits = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    weight = torch.tensor([0.5, 2.0, 1.0])
    eps = 0.1
    targets = (1 - eps) * F.one_hot(b["y"], 3) + eps / 3
    per_row = -(weight * targets * logits.log_softmax(-1)).sum(-1)
    expected = per_row.sum() / weight[b["y"]].sum()
    torch.testing.assert_close(label_loss(logits, b["y"], label_smoothing=eps, weight=weight), expected)
    unweighted = label_loss(logits, b["y"], label_smoothing=eps)
    torch.testing.assert_close(label_loss(logits, b["y"], label_smoothing=eps, weight=torch.ones(3)), unweighted)
    assert not torch.isclose(label_loss(logits, b["y"], label_smoothing=eps, weight=weight), unweighted)


def test_weighted_label_loss_under_mixup_weights_both_terms():
    b = batch()
    logits = torch.randn(64, 3, generator=torch.Generator().manual_seed(2))
    weight, perm, lam = torch.tensor([3.0, 1.0, 0.2]), torch.randperm(64), 0.7
    expected = lam * F.cross_entropy(logits, b["y"], weight=weight) + (1 - lam) * F.cross_entropy(
        logits, b["y"][perm], weight=weight
    )
    torch.testing.assert_close(label_loss(logits, b["y"], lam=lam, perm=perm, weight=weight), expected)


def test_training_loss_uses_the_recipes_class_weights():
    b = batch()
    plain = training_loss(net(), b, Recipe(), AugmentationRNG(0)).loss
    weighted = training_loss(net(), b, Recipe(class_weight=(1.0, 5.0, 0.1)), AugmentationRNG(0)).loss
    ones = training_loss(net(), b, Recipe(class_weight=(1.0, 1.0, 1.0)), AugmentationRNG(0)).loss
    torch.testing.assert_close(ones, plain)
    assert not torch.isclose(weighted, plain)


def test_resolve_class_weight():
    assert resolve_class_weight(None, ["a", "b"], [3, 1]) is None
    assert resolve_class_weight("balanced", ["a", "b"], [30, 10]) == pytest.approx((40 / 60, 40 / 20))
    assert resolve_class_weight("balanced", ["a", "b", "c"], [30, 10, 0])[2] == pytest.approx(40 / 3)
    assert resolve_class_weight({"b": 4, 0: 2}, [0, "b", "c"]) == (2.0, 4.0, 1.0)  # keys compared as text
    assert resolve_class_weight({"1": 3.0}, [0, 1]) == (1.0, 3.0)  # YAML keys are text, labels may be ints
    with pytest.raises(ValueError, match=r"class_weight: unknown label\(s\) 'maybe' \(classes: \['no', 'yes'\]\)"):
        resolve_class_weight({"maybe": 2.0}, ["no", "yes"])
    with pytest.raises(ValueError, match="non-negative"):
        resolve_class_weight({"no": -1.0}, ["no", "yes"])
    with pytest.raises(ValueError, match="needs the training class counts"):
        resolve_class_weight("balanced", ["no", "yes"])
    with pytest.raises(ValueError, match="must be 'balanced'"):
        resolve_class_weight("inverse", ["no", "yes"], [1, 1])
