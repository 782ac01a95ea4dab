"""Dive into Deep Learning's from-scratch and concise chapters, as the book writes them with only
torch's names changed to chainrule's (issue 18, F1-F5), trained side by side with PyTorch on small
synthetic data: each reaches PyTorch's accuracy (or loss) within 0.02.

The one spelling that differs is F4's ``.data``: in chainrule ``.data`` is the NumPy array (the
engine's), and PyTorch's ``.data`` (the same values, outside the graph) is ``.detach()``; see
docs/translation.md."""

import numpy as np
import torch

import chainrule as cr
from chainrule import nn as crnn
from chainrule import optim as croptim

RNG = np.random.default_rng(18)
TRUE_W, TRUE_B = np.array([2.0, -3.4]), 4.2
X_REG = RNG.standard_normal((1000, 2)).astype(np.float32)
Y_REG = (X_REG @ TRUE_W + TRUE_B + RNG.normal(0, 0.01, 1000)).astype(np.float32).reshape(-1, 1)
CENTERS = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
LABELS = RNG.integers(0, 3, 1500)
X_CLS = (CENTERS[LABELS] + RNG.standard_normal((1500, 2)) * 0.7).astype(np.float32)


def _batches(n, batch_size, seed):
    order = np.random.default_rng(seed).permutation(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


# --- F1, F2: linear regression from scratch (d2l 3.4), the book's own SGD -----------------------
class SGDScratch:
    """The book's SGD: ``param -= lr * param.grad`` and ``param.grad.zero_()``."""

    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self):
        for param in self.params:
            param -= self.lr * param.grad

    def zero_grad(self):
        for param in self.params:
            if param.grad is not None:
                param.grad.zero_()


def _linreg_scratch(lib, tensor, epochs=3):
    lib.manual_seed(0)
    w = tensor(np.random.default_rng(1).normal(0, 0.01, (2, 1)).astype(np.float32), requires_grad=True)
    b = tensor(np.zeros(1, np.float32), requires_grad=True)
    optim = SGDScratch([w, b], lr=0.03)
    for epoch in range(epochs):
        for idx in _batches(1000, 10, epoch):
            X, y = tensor(X_REG[idx]), tensor(Y_REG[idx])
            y_hat = lib.matmul(X, w) + b
            loss = ((y_hat - y) ** 2 / 2).mean()
            optim.zero_grad()
            loss.backward()
            with lib.no_grad():
                optim.step()
    with lib.no_grad():
        final = float((((lib.matmul(tensor(X_REG), w) + b) - tensor(Y_REG)) ** 2 / 2).mean())
    return final, np.asarray(w.detach().numpy()).ravel(), float(b.detach().numpy()[0])


def test_f1_f2_linear_regression_from_scratch():
    ours = _linreg_scratch(cr, cr.tensor)
    theirs = _linreg_scratch(torch, torch.tensor)
    assert abs(ours[0] - theirs[0]) < 0.02 and ours[0] < 1e-3  # it learns (it used to stay at 16.4)
    np.testing.assert_allclose(ours[1], TRUE_W, atol=0.02)
    np.testing.assert_allclose(ours[1], theirs[1], atol=0.02)
    assert abs(ours[2] - TRUE_B) < 0.02


# --- F2, F3, F4: softmax regression, concise, with LazyLinear, .data init and gradient clipping ---
def _clip_gradients(lib, grad_clip_val, model):
    """d2l 9.5's clip_gradients, verbatim but for the names."""
    params = [p for p in model.parameters() if p.requires_grad]
    norm = lib.sqrt(sum(lib.sum(p.grad**2) for p in params))
    if norm > grad_clip_val:
        for param in params:
            param.grad[:] *= grad_clip_val / norm


def _softmax_concise(lib, nn, optim, F, tensor, data_of, epochs=3):
    lib.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    net(tensor(X_CLS[:1]))  # materialise the lazy layer (the book's apply_init does a dummy forward)
    data_of(net[1].weight).normal_(0, 0.01)  # F4: the book's net.weight.data.normal_(0, 0.01)
    data_of(net[1].bias).fill_(0)
    opt = optim.SGD(net.parameters(), lr=0.1)
    for epoch in range(epochs):
        for idx in _batches(1500, 32, epoch):
            loss = F.cross_entropy(net(tensor(X_CLS[idx])), tensor(LABELS[idx]))
            opt.zero_grad()
            loss.backward()
            _clip_gradients(lib, 1.0, net)
            opt.step()
    with lib.no_grad():
        pred = net(tensor(X_CLS)).argmax(axis=1) if lib is cr else net(tensor(X_CLS)).argmax(dim=1)
    return float((np.asarray(pred.numpy()) == LABELS).mean())


def test_f2_f3_f4_softmax_regression_concise():
    ours = _softmax_concise(cr, crnn, croptim, cr.nn.functional, cr.tensor, lambda p: p.detach())
    theirs = _softmax_concise(torch, torch.nn, torch.optim, torch.nn.functional, torch.tensor, lambda p: p.data)
    assert ours > 0.85 and abs(ours - theirs) < 0.02, (ours, theirs)


# --- F5: weight decay, concise, with parameter groups (d2l 3.7) ---------------------------------
N_TRAIN, N_TEST, D = 20, 100, 200
X_WD = RNG.standard_normal((N_TRAIN + N_TEST, D)).astype(np.float32)
Y_WD = (X_WD @ np.full(D, 0.01) + 0.05 + RNG.normal(0, 0.01, N_TRAIN + N_TEST)).astype(np.float32).reshape(-1, 1)


def _weight_decay_concise(lib, nn, optim, tensor, data_of, wd, epochs=10):
    lib.manual_seed(0)
    net = nn.LazyLinear(1)
    net(tensor(X_WD[:1]))
    data_of(net.weight).normal_(0, 0.01)
    data_of(net.bias).fill_(0)
    opt = optim.SGD([{"params": net.weight, "weight_decay": wd}, {"params": net.bias}], lr=0.01)
    for epoch in range(epochs):
        for idx in _batches(N_TRAIN, 5, epoch):
            loss = ((net(tensor(X_WD[idx])) - tensor(Y_WD[idx])) ** 2 / 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with lib.no_grad():
        test = float(((net(tensor(X_WD[N_TRAIN:])) - tensor(Y_WD[N_TRAIN:])) ** 2 / 2).mean())
        norm = float((net.weight**2).sum())
    return test, norm


def test_f5_weight_decay_with_parameter_groups():
    results = {}
    for wd in (0, 3):
        results[wd] = (
            _weight_decay_concise(cr, crnn, croptim, cr.tensor, lambda p: p.detach(), wd),
            _weight_decay_concise(torch, torch.nn, torch.optim, torch.tensor, lambda p: p.data, wd),
        )
    for wd, (ours, theirs) in results.items():
        assert abs(ours[0] - theirs[0]) < 0.02, (wd, ours, theirs)
    # the decay acts: with lambda = 3 the weights shrink (it used to "do nothing")
    assert results[3][0][1] < 0.5 * results[0][0][1]
    assert abs(results[3][0][1] - results[3][1][1]) < 0.02
