"""One benchmark workload for one framework, in its own process; prints one JSON line.

    python benchmarks/workers.py FRAMEWORK WORKLOAD [--steps N]

Frameworks: chainrule, chainrule-compiled, torch, numpy (hand-written section equations),
numpy-loss (the same, also computing the loss's value, as the others do), autograd (HIPS), jax.
All workloads are float32 with SGD and the section's weight decay (λ = 1e-4 here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

LAM = 1e-4
LR = 0.1
SIZES = {"d2l": [784, 256, 10], "deep": [784, 1024, 1024, 1024, 10], "tiny": [2, 16, 2]}
BATCH = {"d2l": 256, "deep": 256, "tiny": 8}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def init_weights(sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32)
        for i, o in zip(sizes[:-1], sizes[1:], strict=False)
    ]


def batch_data(workload: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, d, q = BATCH[workload], SIZES[workload][0], SIZES[workload][-1]
    return rng.random((n, d), dtype=np.float32), rng.integers(0, q, n)


def time_steps(step, steps: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


# --- one training step and one prediction per framework --------------------------------------
def make_chainrule(workload: str, compiled: bool = False):
    """Eager chainrule, or (``compiled``) the same step captured once by cr.compile and replayed."""
    import chainrule as cr
    import chainrule.nn.functional as F
    from chainrule.optim import SGD

    ws = [cr.tensor(w, requires_grad=True) for w in init_weights(SIZES[workload])]
    x_np, y = batch_data(workload)
    x = cr.tensor(x_np)
    opt = SGD(ws, LR, weight_decay=LAM)  # the gradient of λ/2‖W‖²F is λW

    def forward(inp):
        h = inp
        for w in ws[:-1]:
            h = F.relu(h @ w.T)
        return h @ ws[-1].T

    def loss_and_grads(inp, labels):
        loss = F.cross_entropy(forward(inp), labels)
        loss.backward()
        return loss

    predict_fn = forward
    if compiled:
        loss_and_grads, predict_fn = cr.compile(loss_and_grads), cr.compile(forward)

    def step():
        opt.zero_grad()
        loss_and_grads(x, y)
        opt.step()

    def predict():
        with cr.no_grad():
            predict_fn(x)

    return step, predict


def make_torch(workload: str):
    import torch

    ws = [torch.tensor(w, requires_grad=True) for w in init_weights(SIZES[workload])]
    x_np, y_np = batch_data(workload)
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    opt = torch.optim.SGD(ws, LR, weight_decay=LAM)

    def forward(inp):
        h = inp
        for w in ws[:-1]:
            h = torch.relu(h @ w.T)
        return h @ ws[-1].T

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()

    def predict():
        with torch.no_grad():
            forward(x)

    return step, predict


def make_numpy(workload: str, with_loss: bool = False):
    """The section's equations with hand-derived gradients (rows are examples).

    ``with_loss`` (framework ``numpy-loss``): also compute the loss's value, which every other
    framework's step computes (it is what the step returns); the plain hand step never needs it."""
    ws = init_weights(SIZES[workload])
    x, y = batch_data(workload)
    n = len(y)
    rows = np.arange(n)

    def forward(inp):
        hs = [inp]
        zs = []
        for w in ws[:-1]:
            z = hs[-1] @ w.T
            zs.append(z)
            hs.append(np.maximum(z, 0))
        return hs, zs, hs[-1] @ ws[-1].T

    def step():
        hs, zs, o = forward(x)
        o -= o.max(axis=1, keepdims=True)
        p = np.exp(o)
        total = p.sum(axis=1, keepdims=True)
        if with_loss:
            _ = np.mean(np.log(total[:, 0]) - o[rows, y])
        p /= total
        p[rows, y] -= 1
        d = p / n  # ∂J/∂o
        for i in range(len(ws) - 1, -1, -1):
            dw = d.T @ hs[i]  # ∂J/∂W = ∂J/∂o hᵀ (+ λW below)
            if i:
                d = d @ ws[i]  # ∂J/∂h = Wᵀ ∂J/∂o
                d *= zs[i - 1] > 0  # ∂J/∂z = ∂J/∂h ⊙ φ′(z)
            dw += LAM * ws[i]
            ws[i] -= LR * dw

    def predict():
        forward(x)

    return step, predict


def make_autograd(workload: str):
    import autograd.numpy as anp
    from autograd import grad

    ws = init_weights(SIZES[workload])
    x, y = batch_data(workload)
    rows = np.arange(len(y))

    def forward(params, inp):
        h = inp
        for w in params[:-1]:
            h = anp.maximum(h @ w.T, 0)
        return h @ params[-1].T

    def loss(params):
        o = forward(params, x)
        m = anp.max(o, axis=1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(o - m), axis=1)) + m[:, 0]
        return anp.mean(lse - o[rows, y])

    g = grad(loss)

    def step():
        gs = g(ws)
        for i, gw in enumerate(gs):
            ws[i] = ws[i] - LR * (gw + LAM * ws[i])

    def predict():
        forward(ws, x)

    return step, predict


def make_jax(workload: str):
    import jax
    import jax.numpy as jnp

    ws = [jnp.asarray(w) for w in init_weights(SIZES[workload])]
    x_np, y_np = batch_data(workload)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)

    def forward(params, inp):
        h = inp
        for w in params[:-1]:
            h = jax.nn.relu(h @ w.T)
        return h @ params[-1].T

    def loss(params):
        o = forward(params, x)
        return jnp.mean(jax.nn.logsumexp(o, axis=1) - o[jnp.arange(o.shape[0]), y])

    @jax.jit
    def update(params):
        gs = jax.grad(loss)(params)
        return [w - LR * (g + LAM * w) for w, g in zip(params, gs, strict=False)]

    fwd = jax.jit(forward)
    state = {"ws": ws}

    def step():
        state["ws"] = update(state["ws"])
        state["ws"][0].block_until_ready()

    def predict():
        fwd(state["ws"], x).block_until_ready()

    return step, predict


MAKERS = {
    "chainrule": make_chainrule,
    "chainrule-compiled": lambda workload: make_chainrule(workload, compiled=True),
    "torch": make_torch,
    "numpy": make_numpy,
    "numpy-loss": lambda workload: make_numpy(workload, with_loss=True),
    "autograd": make_autograd,
    "jax": make_jax,
}


def flops_per_step(workload: str) -> float:
    sizes, n = SIZES[workload], BATCH[workload]
    layers = list(zip(sizes[:-1], sizes[1:], strict=False))
    # forward 2n·i·o per layer; backward 2n·i·o for ∂W and (except the first layer) 2n·i·o for ∂x
    return sum(2 * n * i * o * (2 if k == 0 else 3) for k, (i, o) in enumerate(layers))


def run_mlp(framework: str, workload: str, steps: int) -> dict:
    step, predict = MAKERS[framework](workload)
    t_step = statistics.median(time_steps(step, steps))
    t_pred = statistics.median(time_steps(predict, steps))
    out = {"step_ms": t_step * 1e3, "predict_ms": t_pred * 1e3, "peak_mb": peak_mb()}
    if workload == "deep":
        out["gflops"] = flops_per_step(workload) / t_step / 1e9
    return out


def run_matmul_limit(steps: int) -> dict:
    """NumPy doing only the deep workload's matrix products: the practical GFLOP/s limit."""
    sizes, n = SIZES["deep"], BATCH["deep"]
    rng = np.random.default_rng(0)
    ws = [rng.random((o, i), dtype=np.float32) for i, o in zip(sizes[:-1], sizes[1:], strict=False)]
    x = rng.random((n, sizes[0]), dtype=np.float32)

    def products():
        hs = [x]
        for w in ws:
            hs.append(hs[-1] @ w.T)
        d = hs[-1]
        for k in range(len(ws) - 1, -1, -1):
            _ = d.T @ hs[k]
            if k:
                d = d @ ws[k]

    t = statistics.median(time_steps(products, steps))
    return {"gflops": flops_per_step("deep") / t / 1e9}


def run_memory(framework: str, steps: int) -> dict:
    step, _ = MAKERS[framework]("d2l")
    for _ in range(100):
        step()
    rss_100 = rss_mb()
    for _ in range(steps - 100):
        step()
    rss_end = rss_mb()
    return {
        "rss_after_100_mb": rss_100,
        "rss_after_all_mb": rss_end,
        "steps": steps,
        "growth_pct": 100 * (rss_end - rss_100) / rss_100,
    }


def run_perop(framework: str, steps: int) -> dict:
    """Record one small elementwise op and backpropagate through it (16 elements)."""
    x_np = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    g_np = np.ones(16, np.float32)
    if framework.startswith("chainrule"):
        import chainrule as cr

        x = cr.tensor(x_np, requires_grad=True)

        def one():
            y = cr.tanh(x)
            y.backward(g_np)

        if framework == "chainrule-compiled":
            one = cr.compile(one)
    elif framework == "torch":
        import torch

        x = torch.tensor(x_np, requires_grad=True)
        g = torch.tensor(g_np)

        def one():
            y = torch.tanh(x)
            y.backward(g)
    elif framework == "autograd":
        import autograd.numpy as anp
        from autograd import make_vjp

        f = make_vjp(anp.tanh)

        def one():
            vjp, _ = f(x_np)
            vjp(g_np)
    elif framework == "numpy":

        def one():
            y = np.tanh(x_np)
            _ = g_np - g_np * y * y
    elif framework == "jax":
        import jax

        record_and_pull = jax.jit(lambda x, g: jax.vjp(jax.numpy.tanh, x)[1](g)[0])

        def one():
            record_and_pull(x_np, g_np).block_until_ready()

    else:
        raise SystemExit(f"unknown framework {framework}")
    result = {"us_per_op": _us_per_call(one, steps)}
    if framework == "numpy":
        result["bare_tape_us"] = _us_per_call(_bare_tape_step(x_np, g_np), steps)
    return result


def _us_per_call(one, steps: int) -> float:
    blocks = []
    n = max(steps // 10, 1)
    for _ in range(2):
        one()
    for _ in range(10):
        t = time.perf_counter()
        for _ in range(n):
            one()
        blocks.append((time.perf_counter() - t) / n)
    return statistics.median(blocks) * 1e6


def _bare_tape_step(x_np: np.ndarray, g_np: np.ndarray):
    """The least a Python tape can do for the per-op workload: the floor under any engine.

    Forward makes an output object and a node (parents, rule, saved output); backward
    runs the rule and accumulates into the leaf's .grad. No dtype/shape checks, no
    broadcasting, no graph release, no hooks, no higher orders.
    """

    class Var:
        __slots__ = ("data", "grad", "node")

        def __init__(self, data, node=None):
            self.data, self.grad, self.node = data, None, node

    class Op:
        __slots__ = ("parents", "rule", "saved")

        def __init__(self, parents, rule, saved):
            self.parents, self.rule, self.saved = parents, rule, saved

    def tanh_rule(g, out):
        return g - g * out * out

    def tanh(v):
        out = np.tanh(v.data)
        return Var(out, Op((v,), tanh_rule, out))

    def backward(v, g):
        op = v.node
        gi = op.rule(g, op.saved)
        for p in op.parents:
            p.grad = gi if p.grad is None else p.grad + gi

    x = Var(x_np)

    def one():
        backward(tanh(x), g_np)

    return one


def run_hvp(framework: str, steps: int) -> dict:
    """Time of a Hessian-vector product over the time of a gradient, for the section's objective."""
    d, hdim, q, n = 784, 256, 10, 256
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((hdim, d)) * 0.01).astype(np.float32)
    w2 = (rng.standard_normal((q, hdim)) * 0.01).astype(np.float32)
    x = rng.random((n, d), dtype=np.float32)
    y = rng.integers(0, q, n)
    v = [rng.standard_normal(w.shape).astype(np.float32) for w in (w1, w2)]
    lam = 1e-3
    if framework == "chainrule":
        import chainrule as cr
        import chainrule.nn.functional as F

        xt = cr.tensor(x)

        def J(a, b):
            o = F.relu(xt @ a.T) @ b.T
            return F.cross_entropy(o, y) + (lam / 2) * ((a * a).sum() + (b * b).sum())

        grad_fn = cr.grad(J, argnums=(0, 1))

        def gradient():
            grad_fn(w1, w2)

        def hvp():  # reverse-over-reverse, as a PyTorch user writes it
            a = cr.tensor(w1, requires_grad=True)
            b = cr.tensor(w2, requires_grad=True)
            ga, gb = cr.grad(J(a, b), [a, b], create_graph=True)
            dot = (ga * v[0]).sum() + (gb * v[1]).sum()
            cr.grad(dot, [a, b])

        def hvp_fwd():  # forward-over-reverse: the JVP of the gradient
            cr.jvp(grad_fn, (w1, w2), (v[0], v[1]))

        def forward_record():  # one forward pass, recorded for backward
            J(cr.tensor(w1, requires_grad=True), cr.tensor(w2, requires_grad=True))

        def jvp():  # one forward pass carrying tangents (forward mode)
            cr.jvp(J, (w1, w2), (v[0], v[1]))
    elif framework == "torch":
        import torch

        xt, yt = torch.tensor(x), torch.tensor(y)
        vt = [torch.tensor(a) for a in v]

        def J(a, b):
            o = torch.relu(xt @ a.T) @ b.T
            return torch.nn.functional.cross_entropy(o, yt) + (lam / 2) * ((a * a).sum() + (b * b).sum())

        def gradient():
            a = torch.tensor(w1, requires_grad=True)
            b = torch.tensor(w2, requires_grad=True)
            torch.autograd.grad(J(a, b), [a, b])

        def hvp():
            a = torch.tensor(w1, requires_grad=True)
            b = torch.tensor(w2, requires_grad=True)
            ga, gb = torch.autograd.grad(J(a, b), [a, b], create_graph=True)
            torch.autograd.grad((ga * vt[0]).sum() + (gb * vt[1]).sum(), [a, b])

        pa, pb = torch.tensor(w1), torch.tensor(w2)

        def hvp_fwd():
            torch.func.jvp(torch.func.grad(J, argnums=(0, 1)), (pa, pb), (vt[0], vt[1]))

        def forward_record():
            J(torch.tensor(w1, requires_grad=True), torch.tensor(w2, requires_grad=True))

        def jvp():
            torch.func.jvp(J, (pa, pb), (vt[0], vt[1]))
    else:
        raise SystemExit(f"hvp: {framework} not measured")
    tg = statistics.median(time_steps(gradient, steps))
    th = statistics.median(time_steps(hvp, steps))
    tf = statistics.median(time_steps(hvp_fwd, steps))
    tr = statistics.median(time_steps(forward_record, steps))
    tj = statistics.median(time_steps(jvp, steps))
    return {
        "grad_ms": tg * 1e3,
        "hvp_ms": th * 1e3,
        "ratio": th / tg,
        "hvp_fwd_ms": tf * 1e3,
        "fwd_over_rev": tf / th,
        "forward_ms": tr * 1e3,
        "jvp_ms": tj * 1e3,
        "jvp_ratio": tj / tr,
    }


def run_fmnist(framework: str, recipe: str, epochs: int) -> dict:
    """Train on Fashion-MNIST with a recipe; same initial weights and batch order in both frameworks."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from chainrule.train.config import Config
    from chainrule.train.trainer import Trainer

    if recipe == "default":
        cfg = Config(epochs=epochs)
    else:
        cfg = Config(
            model="mlp",
            hidden=1024,
            optimizer="adam",
            lr=1e-3,
            dropout=0.3,
            init="he_uniform",
            standardize=True,
            schedule="cosine",
            epochs=epochs,
        )
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"chainrule-bench-{os.getpid()}"
    trainer = Trainer(cfg, out_dir, quiet=True)
    if framework == "chainrule":
        hist = trainer.run()
        return {
            "epoch_s": statistics.median([h.seconds for h in hist]),
            "test_accuracy": hist[-1].test_accuracy,
            "epochs": epochs,
        }
    if framework == "numpy" and recipe == "default":
        return fmnist_numpy(trainer, cfg)
    if framework != "torch":
        raise SystemExit(f"fmnist: {framework} not measured")
    import torch

    # same initial weights, same batches; the rest written the usual PyTorch way
    params = {k: torch.tensor(v, requires_grad=True) for k, v in trainer.model.state_dict().items()}
    drop = torch.nn.Dropout(cfg.dropout)
    torch.manual_seed(cfg.seed)

    def forward(xb, train):
        if cfg.model == "section":
            return torch.relu(xb @ params["W1"].T) @ params["W2"].T
        h = torch.relu(xb @ params["0.weight"].T + params["0.bias"])
        if train and cfg.dropout:
            h = drop(h)
        return h @ params["3.weight"].T + params["3.bias"]

    plist = list(params.values())
    opt = torch.optim.SGD(plist, cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(plist, cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs) if cfg.schedule == "cosine" else None
    x_test, y_test = torch.tensor(trainer.x_test), torch.tensor(trainer.y_test)
    seconds = []
    for epoch in range(cfg.epochs):
        t = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in trainer.loader.batches(epoch):
            logits = forward(torch.from_numpy(xb), True)
            yt = torch.from_numpy(yb)
            loss = torch.nn.functional.cross_entropy(logits, yt)
            if cfg.model == "section" and cfg.weight_decay:
                loss = loss + cfg.weight_decay / 2 * ((params["W1"] ** 2).sum() + (params["W2"] ** 2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            # the same per-batch bookkeeping as `chainrule train` (train loss and accuracy)
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yt).sum())
            seen += len(yb)
        seconds.append(time.perf_counter() - t)
        if sched is not None:
            sched.step()
    with torch.no_grad():
        acc = (forward(x_test, False).argmax(1) == y_test).float().mean().item()
    return {"epoch_s": statistics.median(seconds), "test_accuracy": acc, "epochs": epochs}


def fmnist_numpy(trainer, cfg) -> dict:
    """The default recipe's epochs written by hand in NumPy: the floor of `chainrule train` on this machine.

    Same initial weights and batches (the trainer's loader), the section's equations (J = L + s, its
    backward as a user writes it: λW added once), SGD, the same per-batch bookkeeping (train loss,
    accuracy, a finiteness check of J) and the trainer's BLAS threads policy (`chainrule train`'s
    default, one thread; `CHAINRULE_THREADS` overrides as for the trainer).
    """
    from chainrule.train.threads import threads_for_run

    W1, W2 = (trainer.model.state_dict()[k].copy() for k in ("W1", "W2"))
    lam, lr = np.float32(cfg.weight_decay), np.float32(cfg.lr)
    x_train, y_train = trainer.loader.arrays
    seconds = []
    with threads_for_run(None):
        for epoch in range(cfg.epochs):
            t = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            for sel in trainer.loader.index_batches(epoch):
                xb, yb = x_train[sel], y_train[sel]
                n, rows = len(sel), np.arange(len(sel))
                z = xb @ W1.T
                h = np.maximum(z, 0)
                o = h @ W2.T
                m = o.max(axis=1, keepdims=True)
                e = np.exp(o - m)
                s = e.sum(axis=1, keepdims=True)
                loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - o[rows, yb]))
                J = loss + float(lam / 2 * (np.vdot(W1, W1) + np.vdot(W2, W2)))
                do = e / s
                do[rows, yb] -= 1
                do /= n
                gW2 = do.T @ h + lam * W2
                dz = do @ W2
                dz *= z > 0
                gW1 = dz.T @ xb
                gW1 += lam * W1
                W1 -= lr * gW1
                W2 -= lr * gW2
                if not np.isfinite(J):
                    raise SystemExit(f"fmnist numpy: diverged at epoch {epoch + 1}")
                loss_sum += J * n
                correct += int((o.argmax(axis=1) == yb).sum())
                seen += n
            seconds.append(time.perf_counter() - t)
        logits = np.maximum(trainer.x_test @ W1.T, 0) @ W2.T
    acc = float((logits.argmax(axis=1) == trainer.y_test).mean())
    return {"epoch_s": statistics.median(seconds), "test_accuracy": acc, "epochs": cfg.epochs}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("framework", choices=sorted(MAKERS))
    p.add_argument(
        "workload", choices=["d2l", "deep", "tiny", "perop", "memory", "hvp", "matmul", "fmnist", "fmnist-best"]
    )
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    if args.workload in SIZES:
        result = run_mlp(args.framework, args.workload, args.steps)
    elif args.workload == "perop":
        result = run_perop(args.framework, args.steps)
    elif args.workload == "memory":
        result = run_memory(args.framework, args.steps)
    elif args.workload == "hvp":
        result = run_hvp(args.framework, args.steps)
    elif args.workload == "matmul":
        result = run_matmul_limit(args.steps)
    else:
        result = run_fmnist(args.framework, "default" if args.workload == "fmnist" else "best", args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
