"""Command-line options for training that outgrows one memory (wired into ``chainrule train``).

``--microbatches K`` accumulates gradients over K microbatches; ``--parallel data|pipeline``
runs under ``mpiexec -n N``: rank 0 is the ordinary command (it claims the run folder, logs
and writes every file), the other ranks are workers that train alongside and write nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chainrule.train.config import Config, UsageError
from chainrule.train.trainer import Trainer


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
    """A rank of ``mpiexec ... chainrule train --parallel`` failed and printed why: end every rank.

    Called while the error is being handled (it is read from ``sys.exc_info()``). The peers may
    be waiting in ``MPI_Init`` (which returns only when every rank has called it) or in a
    collective, so exiting alone could leave them waiting: the peers are sent the failure (so
    that they print nothing more: this rank reported it) and the process exits without
    finalizing MPI, which makes ``mpiexec`` end the job (:func:`chainrule.parallel.failure.end_job`).
    """
    from chainrule.parallel.comm import launched_ranks

    if not _parallel_launch(args) or launched_ranks() < 2:
        return
    try:
        from chainrule.parallel.comm import Comm
        from chainrule.parallel.failure import end_job as end_all
    except ImportError:  # pragma: no cover - no MPI, nothing waits
        return
    exc = sys.exc_info()[1]
    end_all(Comm(), exc, printed=True, code=None if exc is not None else code)


def is_worker(args: argparse.Namespace) -> bool:
    """Whether this process is a rank other than 0 of ``chainrule train --parallel ...``.

    Under a launcher, also makes each line written to stderr one write (lines of different
    ranks never share a line), and refuses ``--resume`` of a single-process run (each rank
    would train it alone, and a worker would write into rank 0's folder): :class:`UsageError`.
    """
    rank = mpi_rank(args)
    if _parallel_launch(args):
        _whole_lines()
        if rank == 0:
            _check_resume(args)
    return rank != 0


def _whole_lines() -> None:
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(line_buffering=True, write_through=False)
        except (ValueError, OSError):  # pragma: no cover - a stream that cannot be reconfigured
            pass


def _check_resume(args: argparse.Namespace) -> None:
    """``--resume RUN`` under ``mpiexec -n N`` (N >= 2) of a run made without ``--parallel``: refuse it."""
    from chainrule.parallel.comm import launched_ranks
    from chainrule.train.snapshot import CheckpointError, load_checkpoint
    from chainrule.train.trainer import CHECKPOINT

    ranks = launched_ranks()
    if args.resume is None or ranks < 2:
        return
    try:
        _, meta = load_checkpoint(Path(args.resume) / CHECKPOINT)
    except (CheckpointError, OSError, ValueError):
        return  # resuming reports what is wrong with the folder or the checkpoint
    config = meta.get("config")
    parallel = config.get("parallel", "none") if isinstance(config, dict) else "none"
    if parallel == "none":
        raise UsageError(
            f"--resume {args.resume}: the run was made as a single process (no --parallel), so under mpiexec "
            f"-n {ranks} every rank would train it alone; resume it without mpiexec: "
            f"chainrule train --resume {args.resume}"
        )


def run_worker(args: argparse.Namespace) -> int:
    """Train as a non-zero rank: same configuration as rank 0, no run folder, no files, no output.

    A failure here is reported by rank 0 (or by this rank if rank 0 does not), then the job ends
    (:func:`chainrule.parallel.failure.end_job`); a signal ends this rank as it ends rank 0.
    """
    from dataclasses import fields

    try:
        _check_resume(args)
        if args.resume is not None:
            trainer = Trainer.resume(
                args.resume, epochs=args.epochs, quiet=True, data_dir=args.data_dir, threads=args.threads
            )
        else:
            given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
            cfg = Config(**given)
            cfg.compile = not args.no_compile
            trainer = Trainer(cfg, args.out or os.devnull, quiet=True, threads=args.threads)
        trainer.run()
    except KeyboardInterrupt:  # Interrupted: the checkpoint is saved, the exit code says which signal
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure of a worker ends the job, readably
        if isinstance(exc, SystemExit) and not exc.code:
            raise
        from chainrule.parallel.comm import Comm
        from chainrule.parallel.failure import end_job as end_all

        end_all(Comm(), exc, printed=False)
    return 0
