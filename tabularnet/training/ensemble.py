r"""Ensemble members in the objective and in prediction, as pure functions (both drivers, every front door).

A network may return one row of outputs per batch row, ``(B, C)``, or one per member, ``(B, k, C)`` (an
ensemble such as TabM, :class:`tabularnet.nn.MLP` with ``k > 1``). Nothing else needs to know which:

* **Training** treats the members as extra rows: ``(B, k, C)`` becomes ``(B k, C)``, member row ``b k + i`` being
  row ``b`` seen by member ``i``, and every per-row tensor (labels, teacher logits, sample weights) is repeated
  ``k`` times to match (:func:`member_rows`, :func:`repeat_rows`). Every loss of the recipe is a (weighted) mean
  over rows, so on the member rows it is the mean over members of each member's loss on the whole batch --
  TabM's shared batches (each member sees every row) and its mean of the members' losses. MixUp pairs member row
  ``(b, i)`` with ``(pi(b), i)`` (:func:`member_permutation`). The rows can be of any width: classes here, one
  output for a regression.
* **Prediction** averages the members' class probabilities, each member's logits divided by the temperature
  first: :math:`p = \frac{1}{k}\sum_i \mathrm{softmax}(s_i / T)` (:func:`mean_probabilities`), and
  :func:`mean_log_probabilities` gives its logarithm stably (log loss, temperature fitting).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def n_members(outputs: Tensor) -> int:
    """``k`` of ``(B, k, C)`` outputs, 1 for ``(B, C)``."""
    return outputs.shape[1] if outputs.ndim == 3 else 1


def member_rows(outputs: Tensor) -> Tensor:
    """``(B, k, C) -> (B k, C)`` (member row ``b k + i``: row ``b``, member ``i``); ``(B, C)`` unchanged."""
    return outputs.flatten(0, 1) if outputs.ndim == 3 else outputs


def repeat_rows(values: Tensor | None, k: int) -> Tensor | None:
    """A per-row tensor ``(B, ...)`` repeated for the ``k`` member rows of each row, ``(B k, ...)``."""
    return values if values is None or k == 1 else values.repeat_interleave(k, dim=0)


def member_permutation(perm: Tensor | None, k: int) -> Tensor | None:
    """A pairing of rows ``b -> perm[b]`` as a pairing of member rows: ``(b, i) -> (perm[b], i)``."""
    if perm is None or k == 1:
        return perm
    member = torch.arange(k, device=perm.device).repeat(len(perm))
    return perm.repeat_interleave(k) * k + member


def mean_log_probabilities(logits: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """``log`` of :func:`mean_probabilities`, ``(B, C)``: ``log_softmax(logits / T)`` for one member;
    ``logsumexp_i log_softmax(s_i / T) - log k`` for ``(B, k, C)``; in the dtype of ``logits``."""
    log_p = (logits / temperature).log_softmax(-1)
    if logits.ndim != 3:
        return log_p
    return torch.logsumexp(log_p, dim=1) - math.log(logits.shape[1])


def mean_probabilities(logits: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """Class probabilities ``(B, C)`` in float32: ``softmax(logits / T)``, or for ``(B, k, C)`` the members'
    ``softmax(s_i / T)`` averaged."""
    p = (logits.float() / temperature).softmax(-1)
    return p.mean(1) if logits.ndim == 3 else p
