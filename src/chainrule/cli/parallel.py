"""Command-line options for training that outgrows one memory (wired into ``chainrule train``).

``--microbatches K`` accumulates gradients over K microbatches; ``--parallel data|pipeline``
runs under ``mpiexec -n N``: rank 0 is the ordinary command (it claims the run folder, logs
and writes every file), the other ranks are workers that train alongside and write nothing.
"""

from __future__ import annotations

import argparse
import os
import sys

from chainrule.train.trainer import Config, Trainer, UsageError


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The ``train`` subcommand's options for microbatching and MPI parallelism."""
    d = Config()
    g = parser.add_argument_group("memory and parallelism")
    g.add_argument(
        "--microbatches",
        type=int,
        metavar="K",
        help=f"accumulate gradients over K microbatches per step: same update, ~1/K the activations "
        f"(default {d.microbatches})",
    )
    g.add_argument(
        "--parallel",
        choices=["none", "data", "pipeline"],
        help="under mpiexec -n N: data = each rank a shard of the batch, gradients averaged; pipeline = "
        "the model cut into N stages (--model mlp) (default none)",
    )
    g.add_argument(
        "--data-reduce",
        choices=["shared", "allreduce"],
        help="--parallel data: shared = the optimizer's state and update sharded over a host's ranks, "
        "gradients summed in MPI shared memory (Allreduce across hosts); allreduce = every rank sums whole "
        f"gradients with bucketed MPI Allreduce and repeats the whole update (default {d.data_reduce})",
    )
    g.add_argument(
        "--pipeline-schedule",
        choices=["1f1b", "gpipe"],
        help=f"order of the pipeline's forward and backward microbatches (default {d.pipeline_schedule})",
    )
    g.add_argument(
        "--memory-budget",
        type=_budget,
        metavar="SIZE",
        help="fit a training step in SIZE (200MB, 1.5GiB or bytes): cr.plan.fit_budget picks the cheapest "
        "--microbatches and checkpointing that fit, and logs why (default: no budget)",
    )


def _budget(text: str) -> int:
    """argparse type of ``--memory-budget``: a bad size is a usage error (exit 2)."""
    from chainrule.plan.planner import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """No new subcommand: parallel training is ``chainrule train --parallel ...``."""


_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_RANK")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_SIZE")


def _parallel_launch(args: argparse.Namespace) -> bool:
    """``chainrule train`` with ``--parallel`` (or ``--resume``, whose run may be parallel) under a launcher."""
    if getattr(args, "command", None) != "train":
        return False
    if getattr(args, "parallel", None) not in (None, "none"):
        return True
    return getattr(args, "resume", None) is not None and any(n in os.environ for n in _RANK_VARS)


def mpi_rank(args: argparse.Namespace) -> int:
    """This process's rank when ``--parallel`` asks for MPI, or when ``--resume`` runs under ``mpiexec``
    (the run's mode is in its checkpoint), read from the launcher's environment before MPI is
    initialized; else 0."""
    if not _parallel_launch(args):
        return 0
    for name in _RANK_VARS:
        if name in os.environ:
            return int(os.environ[name])
    from chainrule.parallel.comm import mpi

    return int(mpi().COMM_WORLD.Get_rank())


def end_job(args: argparse.Namespace, code: int) -> None:
    """A rank of ``mpiexec ... chainrule train --parallel`` failed before training: end every rank.

    Its peers may be waiting in ``MPI_Init`` (which returns only when every rank has called it) or
    in a collective, so exiting alone would leave them waiting forever; ``MPI_Abort`` ends the job.
    """
    if not _parallel_launch(args) or not any(int(os.environ.get(n, "1")) > 1 for n in _SIZE_VARS):
        return
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover - no MPI, nothing waits
        return
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


def is_worker(args: argparse.Namespace) -> bool:
    """Whether this process is a rank other than 0 of ``chainrule train --parallel ...``."""
    return mpi_rank(args) != 0


def run_worker(args: argparse.Namespace) -> int:
    """Train as a non-zero rank: same configuration as rank 0, no run folder, no files, no output."""
    from dataclasses import fields

    if args.resume is not None:
        trainer = Trainer.resume(
            args.resume, epochs=args.epochs, quiet=True, data_dir=args.data_dir, threads=args.threads
        )
    else:
        given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
        cfg = Config(**given)
        cfg.compile = not args.no_compile
        trainer = Trainer(cfg, args.out or os.devnull, quiet=True, threads=args.threads)
    try:
        trainer.run()
    except UsageError as exc:
        print(f"chainrule: rank {trainer.rank}: error: {exc}", file=sys.stderr)
        return 2
    return 0
