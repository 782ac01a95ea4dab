"""Training the section's network (or a general MLP) on Fashion-MNIST: the main job."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.constructors import as_tensor
from chainrule.core.errors import ChainruleError
from chainrule.core.state import no_grad
from chainrule.core.tensor import Tensor
from chainrule.data import DataLoader
from chainrule.data.io import atomic_write
from chainrule.models.objective import objective
from chainrule.nn import Dropout, Sequential
from chainrule.optim import CosineAnnealingLR, Optimizer, StepLR, Stepper
from chainrule.train import notebook
from chainrule.train.build import (
    accuracy,
    build_model,
    build_optimizer,
    load_data,
    loss_and_accuracy,
    penalty,
    prepare_data,
)
from chainrule.train.config import (
    Config,
    EpochMetrics,
    RunState,
    UsageError,
    checked_config,
    state_from_meta,
    validate_config,
)
from chainrule.train.progress import bytes_bar, emit, progress_bar
from chainrule.train.report import epoch_line, plot_curves, recipe
from chainrule.train.snapshot import CheckpointError, load_checkpoint, save_checkpoint
from chainrule.train.threads import threads_for_run
from chainrule.transforms.compile import compile as compile_step

CHECKPOINT = "checkpoint.npz"
LOG = "run.log"
RUN_FILES = (CHECKPOINT, "metrics.csv", "metrics.json", "curves.png", LOG)  # every file a run writes
_GROWTH = 1000.0  # an objective this many times the run's first (or ln 10, if more) is divergence


def _quiet_overflow() -> Any:
    """No overflow warnings while stepping: a diverging step is reported once, by the divergence checks."""
    return np.errstate(over="ignore", invalid="ignore")


class Diverged(ChainruleError, FloatingPointError):
    """The objective or the parameters became non-finite, or the objective exploded (exit code 1)."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM) after a checkpoint was saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunLog:
    """``run.log`` in the run folder, rewritten atomically with each new line."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOG
        self.lines: list[str] = []
        if self.path.is_file() and not self.path.is_symlink():
            try:
                self.lines = self.path.read_text(errors="replace").splitlines()[-10000:]
            except OSError:
                self.lines = []

    def add(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}")
        atomic_write(self.path, ("\n".join(self.lines) + "\n").encode())


class Trainer:
    def __init__(
        self,
        cfg: Config,
        out_dir: str | Path,
        quiet: bool = False,
        resume_source: str | None = None,
        threads: int | str | None = None,
    ) -> None:
        validate_config(cfg, check_memory=False)
        self.cfg = cfg
        # BLAS threads while run() trains (chainrule.train.threads): None = $CHAINRULE_THREADS, else "auto"
        self.threads = threads
        self.out = Path(out_dir)
        self.quiet = quiet
        self.log: RunLog | None = None  # set by the command line, which owns the run folder
        # a first run downloads 30 MB: a bar per file then, before the first epoch's bar
        (x_train, y_train, self.x_test, self.y_test), self.data_source = load_data(cfg, None if quiet else bytes_bar)
        self.loader = DataLoader(x_train, y_train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
        self.model = build_model(cfg)
        self.optimizer: Stepper = build_optimizer(cfg, self.model)
        self.state = RunState()
        self.memory_note: str | None = None
        self._join()
        with self._failing_together():  # under MPI: an error here reaches every rank
            self._agree(x_train, resume_source)
            self.memory_plan = self._plan_memory(x_train) if cfg.memory_budget else None
            self._parallel_setup(x_train)  # under data parallelism the optimizer may become a sharded one
        self.schedule: StepLR | CosineAnnealingLR | None = None
        if cfg.schedule == "cosine":
            self.schedule = CosineAnnealingLR(self.optimizer, cfg.epochs)
        elif cfg.schedule == "step":
            self.schedule = StepLR(self.optimizer, max(cfg.epochs // 3, 1), 0.1)
        self._stop: int | None = None  # the signal that asked the run to stop
        self._stop_agreed = False  # data parallel: every rank knows of the stop
        self._critical = 0  # > 0 while a step is being applied and counted, or a file written
        self._first_loss: tuple[float, int] | None = None  # (objective, step) of this process's first step
        self._saved_at: tuple[int, int] | None = None  # (epoch, batch) of the checkpoint on disk, if any
        model = self.model

        def loss_and_grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            J, logits = objective(model, x, y)
            J.backward()
            return J, logits

        # under a memory budget the step is not compiled: cr.compile's capture (the first step) keeps every
        # intermediate array alive, past the plan's peak (and it runs a checkpointed segment plainly, no saving)
        self.step_fn: Any = compile_step(loss_and_grads) if cfg.compile and self.memory_plan is None else loss_and_grads

    def _plan_memory(self, x_train: np.ndarray) -> Any:
        """``--memory-budget``: the cheapest plan that fits (cr.plan.fit_budget), applied to the model and config."""
        from chainrule.plan.planner import MemoryBudgetError, fit_budget

        cfg = self.cfg
        ranks = self.comm.size if self.comm is not None else 1
        if cfg.parallel != "none" and ranks < 2:
            raise UsageError(f"--memory-budget with --parallel {cfg.parallel}: run under mpiexec -n N (N >= 2)")
        try:
            report = fit_budget(
                self.model, x_train.shape[1:], cfg.batch_size, cfg.memory_budget, ranks=ranks,
                optimizer=self.optimizer, dtype=x_train.dtype, parallel=(cfg.parallel,),
            )  # fmt: skip
        except MemoryBudgetError as exc:
            raise UsageError(f"--memory-budget {cfg.memory_budget}: {str(exc).splitlines()[0]}") from None
        except ValueError as exc:
            raise UsageError(f"--memory-budget {cfg.memory_budget} with --parallel {cfg.parallel}: {exc}") from None
        assert report.plan is not None
        if self.comm is not None:  # the time model is measured on each rank: rank 0's choice is everyone's
            report.plan = self.comm.bcast_object(report.plan, what="the memory plan")
        cfg.microbatches = report.plan.microbatches
        if cfg.parallel == "pipeline":
            cfg.pipeline_schedule = report.plan.schedule
        report.plan.apply_to(self.model)
        self.memory_note = f"memory plan: {report.why()}"
        if not self.quiet:
            emit(self.memory_note)
        return report.plan

    # --- microbatches and MPI (chainrule.parallel) -------------------------------------
    def _join(self) -> None:
        """Under ``--parallel``: join the MPI job (before planning: the plan depends on the ranks)."""
        self.comm: Any = None
        self.rank = 0
        if self.cfg.parallel == "none":
            return
        from chainrule.parallel import Comm

        self.comm = Comm()
        self.rank = self.comm.rank
        self.quiet = self.quiet or self.rank != 0  # one rank speaks

    def _failing_together(self) -> Any:
        """Under MPI: a block whose error is sent to every rank, then re-raised (the caller reports it)."""
        if self.comm is None:
            return contextlib.nullcontext()
        from chainrule.parallel.failure import failing_together

        return failing_together(self.comm, abort=False)

    def _agree(self, x_train: np.ndarray, resume_source: str | None) -> None:
        """Under MPI: every rank's settings are rank 0's, or every rank stops naming the difference."""
        if self.comm is None:
            return
        from chainrule.parallel.agree import agree, data_fingerprint

        settings = {f"--{k.replace('_', '-')}": v for k, v in asdict(self.cfg).items() if k != "data_dir"}
        settings["--resume"] = resume_source or "none (a new run)"
        data = {"the data (--data-dir)": data_fingerprint(x_train, self.loader.arrays[1], self.x_test)}
        agree(self.comm, settings, derived=data)

    def _parallel_setup(self, x_train: np.ndarray) -> None:
        """Under ``--parallel``: make the parameters identical, cut the pipeline (the plan's stages, if any)."""
        self.dp: Any = None
        self.pipeline: Any = None
        if self.cfg.parallel == "none":
            return
        from chainrule.parallel import DataParallel, Pipeline, ShardedDataParallel

        assert self.comm is not None
        sync = DataParallel(self.model.parameters(), self.comm)
        sync.broadcast_parameters()  # same initial parameters on every rank
        if self.cfg.parallel == "data":
            self._probe_dropout(x_train)
        if self.cfg.parallel == "data" and self.cfg.data_reduce == "shared":
            assert isinstance(self.optimizer, Optimizer)
            self.dp = ShardedDataParallel(self.model.parameters(), self.optimizer, self.comm)
            self.optimizer = self.dp  # steps its shard, then publishes it
        elif self.cfg.parallel == "data":
            self.dp = sync
        else:
            if not isinstance(self.model, Sequential):
                raise UsageError("--parallel pipeline: needs a sequential model (--model mlp)")
            stages = self.memory_plan.stages if self.memory_plan is not None else None
            self.pipeline = Pipeline(
                self.model, self.comm, sample=x_train[:1], bounds=stages, schedule=self.cfg.pipeline_schedule
            )

    def _probe_dropout(self, x_train: np.ndarray) -> None:
        """Let each Dropout see one example (its generator restored): how many numbers it draws per example."""
        drops = self._dropouts()
        if not drops:
            return
        states = [d.rng.bit_generator.state for d in drops]
        with no_grad():
            objective(self.model, as_tensor(x_train[:1]), np.zeros(1, np.int64))
        for d, st in zip(drops, states, strict=True):
            d.rng.bit_generator.state = st

    def _batch(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples ``sel`` of one step; under data parallelism only this rank's shard of them."""
        if self.dp is not None:
            from chainrule.parallel import shard

            sel = sel[shard(len(sel), self.comm.rank, self.comm.size)]
        x, y = self.loader.arrays
        return x[sel], y[sel]

    def _step(self, xb: np.ndarray, yb: np.ndarray, n: int) -> tuple[float, int]:
        """Gradients of one batch of ``n`` examples into ``.grad``; returns (batch loss, correct predictions).

        Under data parallelism ``xb, yb`` are this rank's shard (see :meth:`_batch`) of the ``n``.
        """
        from chainrule.parallel import ShardedDataParallel, accumulate, shard

        cfg = self.cfg

        def grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            J, logits = self.step_fn(x, y)
            return J, logits

        if self.pipeline is not None:
            loss, logits = self.pipeline.step(xb, yb, F.cross_entropy, cfg.microbatches)
            correct = int((logits.argmax(axis=1) == yb).sum()) if logits is not None else 0
            total = self.comm.allreduce_(np.array([correct, float(self._stop is not None)]), "accuracy allreduce")
            self._agree_on_stop(total[1])
            return loss, int(total[0])
        if self.dp is not None:
            # Dropout: this rank draws its shard's rows of the whole batch's mask (the rows before
            # and after them are skipped), so the masks are exactly one process's
            part = shard(n, self.comm.rank, self.comm.size)
            draws = [(d.rng, d.draws_per_example) for d in self._dropouts() if d.draws_per_example]
            for rng, per in draws:
                F.skip_draws(rng, part.start * per)
            loss, logits = accumulate(grads, self.optimizer.params, xb, yb, cfg.microbatches)
            for rng, per in draws:
                F.skip_draws(rng, (n - part.stop) * per)
            weight = len(xb) / n  # this shard's share of the batch mean
            # summed with the gradients: the loss, the correct predictions, and whether any rank was
            # asked to stop (so that every rank stops after the same step)
            stats = [weight * loss, float((logits.argmax(axis=1) == yb).sum()), float(self._stop is not None)]
            if isinstance(self.dp, ShardedDataParallel):
                total = self.dp.reduce_gradients(weight, stats)
            else:
                self.dp.allreduce_gradients(weight)
                total = self.comm.allreduce_(np.array(stats), "loss allreduce")
            self._agree_on_stop(total[2])
            return float(total[0]), int(total[1])
        loss, logits = accumulate(grads, self.optimizer.params, xb, yb, cfg.microbatches)
        return loss, int((logits.argmax(axis=1) == yb).sum())

    def _gather_stage_states(self, optim: dict[str, Any]) -> dict[str, Any]:
        """Pipeline: rank 0 gets every stage's optimizer entries (``"i.slot"``, disjoint by parameter)."""
        comm, tag = self.comm, 31500
        mine = {id(p) for p in self.pipeline.params}
        params = self.optimizer.params
        # only this stage's entries: after a resume a rank also holds (stale) state of the other stages
        own = {k: v for k, v in optim.items() if "." in k and id(params[int(k.split(".")[0])]) in mine}
        if comm.rank != 0:
            comm.send_object(own, 0, tag, what="optimizer state of this stage")
            return optim
        merged = {"lr": optim["lr"], "steps": optim["steps"], **own}
        for r in range(1, comm.size):
            merged |= comm.recv_object(r, tag, what="optimizer state")
        return merged

    def _sync_stages(self) -> None:
        """Pipeline: every rank gets every stage's parameters (for evaluation and the checkpoint)."""
        if self.pipeline is not None:
            self.pipeline.sync_parameters(self.model)

    def say(self, line: str, stream: Any = None) -> None:
        """A line for the run log and, unless quiet, for stdout; a line for ``stream`` (stderr)
        is printed even when quiet. Every line printed during a run goes through here; it is
        printed first, so a log that cannot be written does not hide it."""
        if stream is not None or not self.quiet:
            emit(line, stream)
        if self.log is not None:
            self.log.add(line)

    # --- checkpoints ------------------------------------------------------------------
    def _dropouts(self) -> list[Dropout]:
        return [m for m in self.model.modules() if isinstance(m, Dropout)]

    def save(self) -> Path:
        optim = self.optimizer.state_dict()  # sharded data parallel: gathered from every rank
        if self.pipeline is not None:  # each stage's optimizer state lives on its rank: gather them
            optim = self._gather_stage_states(optim)
        if self.rank != 0:  # only rank 0 writes files
            return self.out / CHECKPOINT
        self._critical += 1  # a signal during the write is acted on after it
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            arrays = {f"param/{k}": v for k, v in self.model.state_dict().items()}
            arrays |= {f"optim/{k}": np.asarray(v) for k, v in optim.items()}
            meta = {
                "config": asdict(self.cfg),
                "state": asdict(self.state),
                "dropout_rng": [d.rng.bit_generator.state for d in self._dropouts()],
                "data_source": str(self.data_source),
            }
            path = self.out / CHECKPOINT
            save_checkpoint(path, arrays, meta)
            return path
        finally:
            self._critical -= 1

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        epochs: int | None = None,
        quiet: bool = False,
        data_dir: str | None = None,
        threads: int | str | None = None,
    ) -> Trainer:
        path = Path(run_dir) / CHECKPOINT
        arrays, meta = load_checkpoint(path)
        cfg = checked_config(arrays, meta, path)
        state = state_from_meta(meta, path)
        if epochs is not None:
            cfg.epochs = epochs
        if data_dir is not None:
            cfg.data_dir = data_dir
        if cfg.epochs < state.epoch:
            raise UsageError(f"--epochs {cfg.epochs}: the run in {run_dir} has already finished {state.epoch} epochs")
        source = None
        if cfg.parallel != "none":  # the ranks check that they resume the same checkpoint
            from chainrule.parallel.agree import arrays_digest

            source = f"epoch {state.epoch}, batch {state.batch} of checkpoint {arrays_digest(arrays)}"
        trainer = cls(cfg, run_dir, quiet=quiet, resume_source=source, threads=threads)
        trainer._restore(arrays, meta, state, path)
        return trainer

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], state: RunState, path: Path) -> None:
        """Load a checkpoint's arrays into this run; anything that does not fit is a CheckpointError."""
        params = self.optimizer.params
        optim = _section(arrays, "optim/")
        for key, value in optim.items():
            if key in ("lr", "steps"):
                if value.shape != () or not np.isfinite(value) or value < 0:
                    raise CheckpointError(f"{path}: optimizer {key} = {value!r} is invalid: corrupt")
                continue
            index, _, slot = key.partition(".")
            if not index.isdigit() or int(index) >= len(params) or slot not in ("momentum", "m", "v"):
                raise CheckpointError(
                    f"{path}: optimizer entry {key!r} does not fit this model ({len(params)} parameters): corrupt"
                )
            if value.shape != params[int(index)].shape:
                raise CheckpointError(
                    f"{path}: optimizer entry {key!r} has shape {value.shape}, "
                    f"parameter has {params[int(index)].shape}: corrupt"
                )
        if "lr" not in optim or "steps" not in optim:
            raise CheckpointError(f"{path}: optimizer state lacks lr/steps: corrupt")
        rngs = meta.get("dropout_rng")
        dropouts = self._dropouts()
        if not isinstance(rngs, list) or len(rngs) != len(dropouts):
            raise CheckpointError(f"{path}: checkpoint dropout state does not fit the model: corrupt")
        if state.batch > len(self.loader):
            raise CheckpointError(f"{path}: checkpoint is at batch {state.batch} of {len(self.loader)}: corrupt")
        try:
            self.model.load_state_dict(_section(arrays, "param/"))
            self.optimizer.load_state_dict(optim)
            for d, st in zip(dropouts, rngs, strict=True):
                d.rng.bit_generator.state = st
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: checkpoint does not fit the model ({exc}): corrupt") from exc
        self.state = state
        self._saved_at = (state.epoch, state.batch)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> list[EpochMetrics]:
        # SIGINT and SIGTERM only set a flag; the loop stops between two whole steps, so the
        # checkpoint never holds a half-applied or uncounted update and resuming reproduces the
        # uninterrupted run. A second signal stops at once, except while a step is being applied
        # and counted or a file written: then it too waits for the end of that (a few ms).
        self._stop, self._stop_agreed = None, False
        if self.memory_note is not None and self.log is not None:
            self.log.add(self.memory_note)
            self.memory_note = None
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            # under MPI an error on one rank, even in the last save, stops every rank
            with self._failing_together(), threads_for_run(self.threads):
                while self.state.epoch < self.cfg.epochs:
                    self._epoch()
                self.save()
                self.write_reports()
                if self.comm is not None:  # no rank ends "finished" while another one failed
                    self.comm.barrier("finishing the run")
        except Diverged as exc:  # the metrics of the epochs before it; the last good checkpoint stays
            self.write_reports(failure=str(exc))
            raise
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else (self._stop or signal.SIGINT)
            self._critical += 1
            try:
                self._check_finite()
                path = self.save()
                where = f"epoch {self.state.epoch + 1}, batch {self.state.batch}"
            finally:
                self._critical -= 1
            print(file=sys.stderr)  # off the progress bar's line
            self.say(
                f"{'interrupted' if signum == signal.SIGINT else 'terminated'} at {where} (stopped by "
                f"{signal.Signals(signum).name}): checkpoint saved to {path}; "
                f"continue with `chainrule train --resume {self.out}`",
                sys.stderr,
            )
            raise Interrupted(signum) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return [EpochMetrics(**h) for h in self.state.history]

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop is not None and not self._critical:  # a second signal stops at once
            raise Interrupted(signum)
        if self._stop is None:
            self._stop = signum

    def _agree_on_stop(self, ranks_stopping: float) -> None:
        """Under MPI: ``ranks_stopping`` ranks were signalled (summed over the step); all stop after it."""
        if ranks_stopping and self._stop is None:
            self._stop = signal.SIGTERM
        self._stop_agreed = bool(ranks_stopping)

    def _check_stop(self) -> None:
        # under MPI a stop is acted on only once every rank knows of it (after the step that
        # shared it), so that every rank stops after the same step
        if self._stop is not None and (self.comm is None or self._stop_agreed):
            raise Interrupted(self._stop)

    def _check_finite(self, step: int | None = None) -> None:
        """Refuse to go on (or save) with NaN/Inf parameters: a :class:`Diverged` at ``step``.

        Runs after every update (``step``: the run's step just taken) and before every
        checkpoint. A sum is finite iff every element is, unless it overflows: then look closer.
        """
        for p in self.optimizer.params:
            if not math.isfinite(float(np.sum(p._data))) and not np.isfinite(p._data).all():
                raise self._diverged("the parameters became non-finite", self.state.batch if step is None else step)

    def _step_number(self, batch: int) -> int:
        """The run's 1-based step count of ``batch`` (1-based, within the epoch in progress)."""
        return self.state.epoch * len(self.loader) + batch

    def _diverged(self, what: str, batch: int) -> Diverged:
        """The error that stops a diverged run at ``batch`` of the epoch in progress (0 = at its end)."""
        st = self.state
        where = (
            f"step {self._step_number(batch)} (epoch {st.epoch + 1}, batch {batch} of {len(self.loader)})"
            if batch
            else f"the end of epoch {st.epoch + 1} (step {self._step_number(len(self.loader))})"
        )
        if self._saved_at is None:
            kept = "no checkpoint was saved (the run diverged in its first epoch; start again with --overwrite)"
        else:
            e, b = self._saved_at
            where_saved = f"after epoch {e}" if not b else f"at epoch {e + 1}, batch {b}"
            kept = f"the last good checkpoint, {where_saved}, is kept"
        return Diverged(
            f"train: diverged at {where}: {what}; the learning rate (--lr {self.cfg.lr:g}) is likely too high, "
            f"lower it; {kept}",
            self._step_number(batch or len(self.loader)),
        )

    def _check_loss(self, loss: float, batch: int) -> None:
        """A non-finite objective, or one grown to 1000 times this process's first, is divergence."""
        if not math.isfinite(loss):
            raise self._diverged(f"the objective became {loss}", batch)
        if self._first_loss is None:
            self._first_loss = (loss, self._step_number(batch))
            return
        first, at = self._first_loss
        if loss > _GROWTH * max(first, math.log(10)):
            raise self._diverged(
                f"the objective grew from {first:.4g} at step {at} to {loss:.4g} (over {_GROWTH:g} times)", batch
            )

    def _epoch(self) -> None:
        st, cfg = self.state, self.cfg
        if self.schedule is not None:
            self.schedule.set_epoch(st.epoch)
        desc = f"epoch {st.epoch + 1}/{cfg.epochs}"
        bar = None if self.quiet else progress_bar(len(self.loader), desc, st.batch)
        bar = notebook.notebook_bar(bar, len(self.loader), desc, st.batch, self.quiet)
        start = time.perf_counter()
        try:
            for sel in self.loader.index_batches(st.epoch, start=st.batch):
                self._check_stop()
                xb, yb = self._batch(sel)
                self.optimizer.zero_grad()
                with _quiet_overflow():  # a diverging step is reported by the checks below, not warned about
                    loss, correct = self._step(xb, yb, len(sel))
                # from here to the end of the bookkeeping a signal only sets the flag: the step is
                # applied and counted together, or (raised before this point) not at all
                self._critical += 1
                with _quiet_overflow():
                    self.optimizer.step()
                self._check_loss(loss, st.batch + 1)
                self._check_finite(st.batch + 1)
                st.loss_sum += loss * len(sel)
                st.correct += correct
                st.seen += len(sel)
                st.batch += 1
                self._critical -= 1
                del xb, yb  # not alive while the next batch is gathered (a memory plan counts one batch)
                if bar is not None:
                    bar.update(1)
            self._check_stop()
        finally:
            self._critical = 0
            st.seconds += time.perf_counter() - start
            if bar is not None:
                bar.close()
        self._sync_stages()
        with _quiet_overflow():  # a diverged test loss is reported below, not warned about
            test_loss, test_accuracy = loss_and_accuracy(self.model, self.x_test, self.y_test)
        pen = penalty(self.model, self.cfg.weight_decay)
        if not (math.isfinite(test_loss) and math.isfinite(pen)):
            raise self._diverged(f"the test loss became {test_loss} (penalty s = {pen})", 0)
        m = EpochMetrics(
            epoch=st.epoch + 1,
            train_loss=st.loss_sum / max(st.seen, 1),
            train_accuracy=st.correct / max(st.seen, 1),
            test_accuracy=test_accuracy,
            seconds=st.seconds,
            lr=self.optimizer.lr,
            test_loss=test_loss,
            penalty=pen,
        )
        self._critical += 1
        try:
            st.history.append(asdict(m))
            self.state = RunState(epoch=st.epoch + 1, history=st.history)
            if self.comm is not None:  # a peer dying in the save's gather takes this rank with it (mpiexec):
                self.write_reports()  # the epoch's metrics are written first, and every rank waits for that
                self.comm.barrier("writing the epoch's metrics")
            self.save()
            self._saved_at = (self.state.epoch, 0)
        finally:
            self._critical -= 1
        self.say(epoch_line(m))
        notebook.epoch_done(self.out, st.history, recipe(cfg), self.quiet)  # a notebook's live plot
        self._check_stop()

    def write_reports(self, failure: str | None = None) -> None:
        """metrics.csv, metrics.json (strict JSON: a non-finite number is null) and curves.png of the epochs done.

        ``failure``: why the run stopped early (divergence), recorded in metrics.json.
        """
        if self.rank != 0:
            return
        history = self.state.history
        self.out.mkdir(parents=True, exist_ok=True)
        names = list(EpochMetrics.__dataclass_fields__)
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=names, lineterminator="\n")
        w.writeheader()
        w.writerows(history)
        atomic_write(self.out / "metrics.csv", text.getvalue().encode())
        report = {
            "config": asdict(self.cfg),
            "data_source": str(self.data_source),
            "epochs": history,
            "status": "diverged" if failure else "finished",
        }
        if failure:
            report["error"] = failure
        atomic_write(self.out / "metrics.json", json.dumps(_json_safe(report), indent=2, allow_nan=False).encode())
        png = io.BytesIO()
        plot_curves(history, png, title=recipe(self.cfg))
        atomic_write(self.out / "curves.png", png.getvalue())


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The checkpoint entries under ``prefix`` ("param/" or "optim/"), with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def evaluate(run_dir: str | Path, data_dir: str | None = None) -> float:
    path = Path(run_dir) / CHECKPOINT
    arrays, meta = load_checkpoint(path)
    cfg = checked_config(arrays, meta, path)  # before the model is built from it
    if data_dir is not None:
        cfg.data_dir = data_dir
    cfg.limit_test = 0  # always the whole test set
    model = build_model(cfg)
    try:
        model.load_state_dict(_section(arrays, "param/"))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not fit the model ({exc}): corrupt") from exc
    _, _, x_test, y_test = prepare_data(cfg)
    return accuracy(model, x_test, y_test)


__all__ = [
    "Config",
    "Diverged",
    "EpochMetrics",
    "Interrupted",
    "Trainer",
    "UsageError",
    "emit",
    "evaluate",
    "validate_config",
]
