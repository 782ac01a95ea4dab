"""Forward and backward through the section's network, printing the recorded graph."""

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core.backward import toposort

rng = np.random.default_rng(0)
x = cr.tensor(rng.standard_normal((784, 4)))
y = np.array([3, 1, 4, 1])
W1 = cr.tensor(rng.standard_normal((256, 784)) * 0.01, requires_grad=True)
W2 = cr.tensor(rng.standard_normal((10, 256)) * 0.01, requires_grad=True)
lam = 1e-3

z = W1 @ x
h = F.relu(z)
o = W2 @ h
L = F.cross_entropy(o.T, y)
s = (lam / 2) * ((W1 * W1).sum() + (W2 * W2).sum())
J = L + s

for node in toposort([J.node]):
    print(f"{node.name:>14}  out {node.out_shape!s:>12}  keeps {node.saved_nbytes:>8} bytes")
J.backward()
print("dJ/dW1", W1.grad.shape, "dJ/dW2", W2.grad.shape)
