"""The section's objective written the way a user writes it, one framework per process.

    python benchmarks/section.py FRAMEWORK [--steps N] [--threads N]

FRAMEWORK: chainrule, chainrule-compiled, torch, numpy (hand-written gradients), numpy-loss
(the same, also computing the value of J, which the others return), jax.
The step (float32, batch 256, 784-256-10, biases, λ = 1e-4):

    h = relu(X @ W1 + b1);  o = h @ W2 + b2
    J = cross_entropy(o, y) + λ/2 (‖W1‖² + ‖W2‖²)        (the penalty is in the graph)
    zero_grad; J.backward(); SGD(lr=0.1).step()

Nothing here tunes the process: no allocator variables, no ``mallopt``, no thread setting
unless ``--threads`` is given (then through threadpoolctl, or torch.set_num_threads), so
the figures are what a script or a notebook gets. Prints one JSON line: the median step
(ms), minor page faults per step (getrusage over the timed steps), peak RSS (MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

LAM, LR, BATCH, SIZES = 1e-4, 0.1, 256, (784, 256, 10)


def data(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Initial (W1, b1, W2, b2), a batch X (256, 784) and its labels y, the same for every framework."""
    rng = np.random.default_rng(seed)
    d, h, q = SIZES
    params = [
        (rng.standard_normal((d, h)) * 0.01).astype(np.float32),
        np.zeros(h, np.float32),
        (rng.standard_normal((h, q)) * 0.01).astype(np.float32),
        np.zeros(q, np.float32),
    ]
    return params, rng.random((BATCH, d), dtype=np.float32), rng.integers(0, q, BATCH)


def chainrule_step(compiled: bool = False) -> Callable[[], None]:
    import chainrule as cr
    import chainrule.nn.functional as F

    init, x_np, y = data()
    W1, b1, W2, b2 = (cr.tensor(p, requires_grad=True) for p in init)
    X = cr.tensor(x_np)
    opt = cr.optim.SGD([W1, b1, W2, b2], lr=LR)

    def loss_and_grads(X, y):
        h = F.relu(X @ W1 + b1)
        o = h @ W2 + b2
        J = F.cross_entropy(o, y) + LAM / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        J.backward()
        return J

    run = cr.compile(loss_and_grads) if compiled else loss_and_grads

    def step() -> None:
        opt.zero_grad()
        run(X, y)
        opt.step()

    return step


def torch_step() -> Callable[[], None]:
    import torch
    import torch.nn.functional as F

    init, x_np, y_np = data()
    W1, b1, W2, b2 = (torch.tensor(p, requires_grad=True) for p in init)
    X, y = torch.tensor(x_np), torch.tensor(y_np)
    opt = torch.optim.SGD([W1, b1, W2, b2], lr=LR)

    def step() -> None:
        h = F.relu(X @ W1 + b1)
        o = h @ W2 + b2
        J = F.cross_entropy(o, y) + LAM / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        opt.zero_grad()
        J.backward()
        opt.step()

    return step


def numpy_step(with_loss: bool = False) -> Callable[[], None]:
    """The same step with the gradients derived by hand, written plainly (no out=, no buffers).

    ``with_loss`` (framework ``numpy-loss``): also compute the value of J, as every other
    framework's step does (they return it); the plain hand-written step never needs it."""
    (W1, b1, W2, b2), X, y = data()
    rows = np.arange(BATCH)

    def step() -> None:
        z = X @ W1 + b1
        h = np.maximum(z, 0)
        o = h @ W2 + b2
        shifted = o - o.max(axis=1, keepdims=True)
        p = np.exp(shifted)
        total = p.sum(axis=1, keepdims=True)
        if with_loss:
            xent = np.mean(np.log(total[:, 0]) - shifted[rows, y])
            _ = xent + LAM / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        p /= total
        p[rows, y] -= 1
        do = p / BATCH  # ∂J/∂o
        dW2 = h.T @ do + LAM * W2
        db2 = do.sum(axis=0)
        dz = (do @ W2.T) * (z > 0)
        dW1 = X.T @ dz + LAM * W1
        db1 = dz.sum(axis=0)
        for w, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            w -= LR * g

    return step


def jax_step() -> Callable[[], None]:
    import jax
    import jax.numpy as jnp

    init, x_np, y_np = data()
    X, y = jnp.asarray(x_np), jnp.asarray(y_np)

    def J(params):
        W1, b1, W2, b2 = params
        o = jax.nn.relu(X @ W1 + b1) @ W2 + b2
        xent = jnp.mean(jax.nn.logsumexp(o, axis=1) - o[jnp.arange(BATCH), y])
        return xent + LAM / 2 * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    @jax.jit
    def update(params):
        return [w - LR * g for w, g in zip(params, jax.grad(J)(params), strict=True)]

    state = {"p": [jnp.asarray(p) for p in init]}

    def step() -> None:
        state["p"] = update(state["p"])
        state["p"][0].block_until_ready()

    return step


STEPS = {
    "chainrule": chainrule_step,
    "chainrule-compiled": lambda: chainrule_step(compiled=True),
    "torch": torch_step,
    "numpy": numpy_step,
    "numpy-loss": lambda: numpy_step(with_loss=True),
    "jax": jax_step,
}


def set_threads(framework: str, n: int) -> None:
    if framework == "torch":
        import torch

        torch.set_num_threads(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def measure(step: Callable[[], None], steps: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        step()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "step_ms": statistics.median(times) * 1e3,
        "faults_per_step": faults / steps,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("framework", choices=sorted(STEPS))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads is not None:
        set_threads(args.framework, args.threads)
    print(json.dumps({"framework": args.framework, **measure(STEPS[args.framework](), args.steps)}))


if __name__ == "__main__":
    main()
