"""Plain nn.Modules: batch tensors in, logits out. They know nothing about training."""

from tabularnet.nn.ft_transformer import FTTransformer
from tabularnet.nn.mlp import MLP

__all__ = ["MLP", "FTTransformer"]
