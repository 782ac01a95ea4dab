"""Command-line options for training that outgrows one memory (wired into ``chainrule train``).

``--microbatches K`` accumulates gradients over K microbatches; ``--parallel data|pipeline``
runs under ``mpiexec -n N``: rank 0 is the ordinary command (it claims the run folder, logs
and writes every file), the other ranks are workers that train alongside and write nothing.
"""

from __future__ import annotations

import argparse
import os
import sys

from chainrule.training import Config, Trainer, UsageError


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
        help="fit a training step in SIZE (200MB, 1.5GiB or bytes): cr.memory.plan picks the cheapest "
        "--microbatches and checkpointing that fit, and logs why (default: no budget)",
    )


def _budget(text: str) -> int:
    """argparse type of ``--memory-budget``: a bad size is a usage error (exit 2)."""
    from chainrule.planner import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """No new subcommand: parallel training is ``chainrule train --parallel ...``."""


def mpi_rank(args: argparse.Namespace) -> int:
    """This process's rank when ``--parallel`` asks for MPI (read from the launcher's environment
    before MPI is initialized), else 0."""
    if getattr(args, "parallel", None) in (None, "none") or getattr(args, "command", None) != "train":
        return 0
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    from chainrule.parallel.comm import mpi

    return int(mpi().COMM_WORLD.Get_rank())


def is_worker(args: argparse.Namespace) -> bool:
    """Whether this process is a rank other than 0 of ``chainrule train --parallel ...``."""
    return mpi_rank(args) != 0


def run_worker(args: argparse.Namespace) -> int:
    """Train as a non-zero rank: same configuration as rank 0, no run folder, no files, no output."""
    from dataclasses import fields

    if args.resume is not None:
        trainer = Trainer.resume(args.resume, epochs=args.epochs, quiet=True, data_dir=args.data_dir)
    else:
        given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
        cfg = Config(**given)
        cfg.compile = not args.no_compile
        trainer = Trainer(cfg, args.out or os.devnull, quiet=True)
    try:
        trainer.run()
    except UsageError as exc:
        print(f"chainrule: rank {trainer.rank}: error: {exc}", file=sys.stderr)
        return 2
    return 0
