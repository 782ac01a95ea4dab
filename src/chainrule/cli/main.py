"""``chainrule train`` / ``chainrule evaluate`` (also ``python -m chainrule``).

Everything that can be checked before work starts is checked first: the flags, the memory a
run needs, the data folder, the run folder (free, writable, lockable, no symlinks, enough
disk). A problem there is one line on stderr and exit code 2, in well under a second.
Exit codes: 0 done, 1 failure during the run (disk full, divergence), 2 bad usage or bad
input file, 130 stopped by SIGINT and 143 by SIGTERM (both with a checkpoint saved).
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from chainrule import __version__
from chainrule.cli import graph as graph_cli
from chainrule.cli import measure
from chainrule.cli import parallel as parallel_cli
from chainrule.core.errors import ChainruleError, DataError
from chainrule.data.io import OutputError
from chainrule.train.config import Config, UsageError, validate_config
from chainrule.train.progress import emit
from chainrule.train.rundir import RunDir, claim_new_run, claim_resume
from chainrule.train.threads import ENV as THREADS_ENV
from chainrule.train.threads import parse_threads, threads_for_run
from chainrule.train.trainer import Interrupted, RunLog, Trainer, evaluate

_DATA_HELP = (
    "folder with the Fashion-MNIST IDX files, then the only place looked at (default: $CHAINRULE_DATA, "
    "/usr/share/datasets/fashion-mnist, then the user cache, downloading there if missing)"
)

# flags that may accompany --resume; the rest of a run's configuration is fixed at its start
_RESUME_FLAGS = {"epochs", "data_dir", "quiet", "threads"}


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (written out where the parser's default is None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text.lower():
            return text
        if action.nargs == 0:  # store_true flags
            return f"{text} (default: off)".strip()
        if action.default is None:
            return f"{text} (default: none)".strip()
        return f"{text} (default: %(default)s)".strip()


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.option_strings:  # an option without help still shows its default
            action.help = "(default: off)" if action.nargs == 0 else "(default: %(default)s)"
        return action

    def error(self, message: str) -> NoReturn:  # one line, not the whole usage text
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="chainrule",
        description="Train and evaluate the section's MLP (D2L §5.3), and draw or explain its computational graph.",
        epilog="Run 'chainrule COMMAND --help' for a command's options and their defaults.",
    )
    p.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    graph_cli.add_parsers(sub)
    measure.add_parsers(sub)
    d = Config()
    t = sub.add_parser("train", help="train on Fashion-MNIST (defaults: the book's recipe)")
    t.add_argument("--model", choices=["section", "section-bias", "mlp"], help=f"default {d.model}")
    t.add_argument("--hidden", type=int, help=f"default {d.hidden}")
    t.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], help=f"default {d.activation}")
    t.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    t.add_argument("--lr", type=float, help=f"default {d.lr}")
    t.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    t.add_argument(
        "--weight-decay",
        type=float,
        help=f"λ of the section's penalty s = λ/2(‖W1‖² + ‖W2‖²) (default {d.weight_decay})",
    )
    t.add_argument("--optimizer", choices=["sgd", "momentum", "adam", "adamw"], help=f"default {d.optimizer}")
    t.add_argument("--schedule", choices=["none", "cosine", "step"], help=f"default {d.schedule}")
    t.add_argument(
        "--dropout", type=float, help=f"dropout after the hidden layer (--model mlp only; default {d.dropout})"
    )
    t.add_argument("--init", choices=["normal", "xavier", "he", "he_uniform"], help=f"default {d.init}")
    t.add_argument("--standardize", action="store_true", default=None, help="standardize with training mean/std")
    t.add_argument("--seed", type=int, help=f"default {d.seed}")
    t.add_argument(
        "--limit-train", type=int, help=f"use only the first N training images (0 = all; default {d.limit_train})"
    )
    t.add_argument("--limit-test", type=int, help=f"use only the first N test images (0 = all; default {d.limit_test})")
    t.add_argument("--data-dir", help=_DATA_HELP)
    t.add_argument("--out", help="run folder (default runs/<timestamp>, made unique)")
    t.add_argument("--overwrite", action="store_true", default=None, help="replace the run already in --out")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    t.add_argument("--quiet", action="store_true", default=None, help="no progress bar or epoch lines")
    t.add_argument("--no-compile", action="store_true", default=None, help="run every step eagerly")
    parallel_cli.add_train_options(t)
    _add_threads(t)
    e = sub.add_parser("evaluate", help="test accuracy of a saved run")
    e.add_argument("run", help="the run folder")
    e.add_argument("--data-dir", default=None, help=_DATA_HELP)
    _add_threads(e)
    return p


def _threads_arg(text: str) -> str:
    try:
        parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_threads_arg,
        metavar="N|auto|none",
        help=f"threads for NumPy's BLAS while this command runs: auto = the measured policy (one per process, "
        f"see docs/performance.md), none = leave NumPy's default (default: ${THREADS_ENV}, else auto)",
    )


def _config(args: argparse.Namespace) -> Config:
    given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
    cfg = Config(**given)
    cfg.compile = not args.no_compile
    return cfg


def _preflight(args: argparse.Namespace) -> tuple[Config | None, RunDir]:
    """Check every flag and claim the run folder; raises UsageError (exit 2) before any work."""
    from chainrule.data.fashion_mnist import check_data_dir

    if args.resume is not None:
        extra = sorted(
            k for k, v in vars(args).items() if v is not None and k not in _RESUME_FLAGS | {"command", "resume"}
        )
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise UsageError(f"{flags}: cannot be combined with --resume (a run keeps its configuration)")
        if args.epochs is not None and args.epochs < 1:
            raise UsageError(f"--epochs {args.epochs}: must be a positive integer")
        if args.data_dir is not None:
            check_data_dir(args.data_dir)
        return None, claim_resume(Path(args.resume), args.epochs, args.data_dir)
    cfg = _config(args)
    validate_config(cfg)
    if cfg.data_dir is not None:
        check_data_dir(cfg.data_dir)
    run = claim_new_run(
        Path(args.out) if args.out else None,
        default=Path(f"runs/{datetime.now():%Y%m%d-%H%M%S}"),
        overwrite=bool(args.overwrite),
        cfg=cfg,
    )
    return cfg, run


def _on_term_before_run(signum: int, frame: Any) -> None:
    print("\nterminated before training started: nothing to save", file=sys.stderr)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `chainrule`: say what there is to run
        parser.print_help()
        return 0
    if args.command in ("memory", "cost"):
        return measure.run(args)
    previous_term = None
    if args.command == "train":
        previous_term = signal.signal(signal.SIGTERM, _on_term_before_run)
    try:
        if getattr(args, "func", None) is not None:  # graph, explain
            result: int = args.func(args)
            return result
        with threads_for_run(args.threads):
            code = _main(args)
        if code:
            parallel_cli.end_job(args, code)  # a parallel run's rank failed: its peers must not wait for it
        return code
    except Interrupted as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:  # before training started (Trainer.run raises Interrupted)
        print("\ninterrupted before training started: nothing to save", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        parallel_cli.end_job(args, 2)
        return 2
    except OutputError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        parallel_cli.end_job(args, 1)
        return 1
    except FloatingPointError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        parallel_cli.end_job(args, 1)
        return 1
    except (ChainruleError, ValueError, KeyError) as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        parallel_cli.end_job(args, 2)
        return 2
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _main(args: argparse.Namespace) -> int:
    if args.command == "evaluate":
        emit(f"test accuracy {evaluate(args.run, args.data_dir):.4f}")
        return 0
    if parallel_cli.is_worker(args):  # mpiexec rank > 0: trains alongside rank 0, writes nothing
        return parallel_cli.run_worker(args)
    cfg, run = _preflight(args)
    with run:
        log = RunLog(run.path)
        quiet = bool(args.quiet)
        if cfg is None:
            log.add(f"resume (pid {run.pid})")
            trainer = Trainer.resume(
                run.path, epochs=args.epochs, quiet=quiet, data_dir=args.data_dir, threads=args.threads
            )
        else:
            log.add(f"start (pid {run.pid}); config {cfg}")
            try:
                trainer = Trainer(cfg, run.path, quiet=quiet, threads=args.threads)
            except Exception:  # e.g. no plan fits --memory-budget: leave no half-made run behind
                run.discard()
                raise
        trainer.log = log
        log.add(f"data: Fashion-MNIST from {trainer.data_source}")
        # every line printed from here on goes to run.log too (Trainer.say)
        trainer.say(
            f"run folder {trainer.out}; {trainer.model.num_parameters():,} parameters; data from {trainer.data_source}"
        )
        try:
            trainer.run()
        except (OutputError, FloatingPointError) as exc:
            try:
                log.add(f"chainrule: error: {exc}")  # the line main() prints
            except OutputError:
                pass
            raise
        trainer.say(f"wrote {trainer.out}/metrics.csv, metrics.json, curves.png, checkpoint.npz, run.log")
        log.add("finished")
    return 0


__all__ = ["DataError", "main"]


if __name__ == "__main__":
    sys.exit(main())
