"""Neural-network building blocks."""

from chainrule.nn import functional, init
from chainrule.nn.modules import Dropout, Flatten, Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh

__all__ = [
    "Dropout",
    "Flatten",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "functional",
    "init",
]
