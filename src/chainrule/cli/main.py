"""``chainrule train`` / ``chainrule evaluate`` (also ``python -m chainrule``)."""

from __future__ import annotations

import argparse
import ctypes
import sys
from datetime import datetime
from pathlib import Path

from chainrule.core.errors import ChainruleError
from chainrule.training import Config, Trainer, evaluate


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chainrule", description="Train and evaluate the section's MLP.")
    sub = p.add_subparsers(dest="command", required=True)
    d = Config()
    t = sub.add_parser("train", help="train on Fashion-MNIST (defaults: the book's recipe)")
    t.add_argument("--model", default=d.model, choices=["section", "section-bias", "mlp"])
    t.add_argument("--hidden", type=int, default=d.hidden)
    t.add_argument("--activation", default=d.activation, choices=["relu", "tanh", "sigmoid"])
    t.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs}")
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay, help="λ of the section's penalty")
    t.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "momentum", "adam", "adamw"])
    t.add_argument("--schedule", default=d.schedule, choices=["none", "cosine", "step"])
    t.add_argument("--dropout", type=float, default=d.dropout, help="dropout after the hidden layer (mlp)")
    t.add_argument("--init", default=d.init, choices=["normal", "xavier", "he", "he_uniform"])
    t.add_argument("--standardize", action="store_true", help="standardize pixels with training mean/std")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--limit-train", type=int, default=0, help="use only the first N training images")
    t.add_argument("--limit-test", type=int, default=0, help="use only the first N test images")
    t.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    t.add_argument("--out", default=None, help="run folder (default runs/<timestamp>)")
    t.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    t.add_argument("--no-compile", action="store_true", help="run every step eagerly instead of replaying it")
    e = sub.add_parser("evaluate", help="test accuracy of a saved run")
    e.add_argument("run")
    e.add_argument("--data-dir", default=None)
    return p


def _tune_allocator() -> None:
    """Keep large freed blocks in the heap instead of returning them to the OS each step.

    Training frees and reallocates the same large arrays every step; by default glibc maps
    and unmaps blocks over a threshold it adjusts on the fly, and depending on the first
    frees a process can end up paying page faults on every step (we measured the same
    step at 1.9 ms or 3.1 ms in two runs of one script). The command line program fixes
    both thresholds; the library itself never changes process-wide settings.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _tune_allocator()
    try:
        if args.command == "evaluate":
            print(f"test accuracy {evaluate(args.run, args.data_dir):.4f}")
            return 0
        if args.resume:
            trainer = Trainer.resume(args.resume, epochs=args.epochs, quiet=args.quiet)
        else:
            cfg = Config(
                model=args.model,
                hidden=args.hidden,
                activation=args.activation,
                epochs=args.epochs if args.epochs is not None else Config.epochs,
                lr=args.lr,
                batch_size=args.batch_size,
                weight_decay=args.weight_decay,
                optimizer=args.optimizer,
                schedule=args.schedule,
                dropout=args.dropout,
                init=args.init,
                standardize=args.standardize,
                seed=args.seed,
                compile=not args.no_compile,
                limit_train=args.limit_train,
                limit_test=args.limit_test,
                data_dir=args.data_dir,
            )
            out = Path(args.out or f"runs/{datetime.now():%Y%m%d-%H%M%S}")
            trainer = Trainer(cfg, out, quiet=args.quiet)
        if not args.quiet:
            print(f"run folder {trainer.out}; {trainer.model.num_parameters():,} parameters", flush=True)
        trainer.run()
        if not args.quiet:
            print(f"wrote {trainer.out}/metrics.csv, metrics.json, curves.png, checkpoint.npz")
        return 0
    except KeyboardInterrupt:
        return 130
    except (ChainruleError, ValueError, KeyError) as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
