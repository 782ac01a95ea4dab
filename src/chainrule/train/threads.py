"""How many threads NumPy's BLAS may use while chainrule runs its own work.

NumPy's BLAS (OpenBLAS) starts one thread per core and its threads spin while they wait
for each other: on a machine whose cores are shared with other busy processes, a step
spends most of its time waiting for a thread that is not running. The measurements in
docs/performance.md (a quiet 2-core machine and the same beside one busy process, the
d2l step and the deep 784-1024x3-10 MLP) chose the policy of :func:`auto_threads`.

Importing chainrule changes nothing. The policy is applied only

- by ``chainrule train`` (``--threads``; default ``$CHAINRULE_THREADS``, else ``auto``),
- by :class:`chainrule.train.trainer.Trainer` while its ``run()`` trains (``threads=``),
- by an explicit :func:`set_threads` (``cr.set_threads``), process-wide until undone.

The limit is set through threadpoolctl (in the ``train`` extra); without it,
:func:`set_threads` raises an error saying so, and the CLI and the Trainer leave
the BLAS as it is (with a note). ``none`` (or ``0``) means: leave the BLAS as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

ENV = "CHAINRULE_THREADS"


def parse_threads(value: str | int | None, where: str = "--threads") -> int | str | None:
    """``"auto"``, a positive count, or None (leave the BLAS alone: ``none``, ``0`` or empty)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{where}: expected 'auto', 'none' or a thread count >= 0, got {value}")
        return value or None
    text = str(value).strip().lower()
    if text in ("", "none", "0"):
        return None
    if text == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{where}: expected 'auto', 'none' or a thread count, got {value!r}") from None
    if n < 0:
        raise ValueError(f"{where}: expected 'auto', 'none' or a thread count >= 0, got {value!r}")
    return n or None


def requested_threads(given: str | int | None = None) -> int | str | None:
    """The setting that applies: ``given`` if not None, else ``$CHAINRULE_THREADS``, else ``"auto"``."""
    if given is not None:
        return parse_threads(given)
    if os.environ.get(ENV) is not None:
        return parse_threads(os.environ[ENV], where=f"${ENV}")
    return "auto"


def auto_threads(ranks_per_host: int = 1) -> int:
    """The measured policy: one BLAS thread per process.

    On the measured machine one thread was never much slower than two for the section's
    step (its products are small), and two threads beside one busy process were several
    times slower on both workloads: one thread is the choice that is never badly wrong.
    ``ranks_per_host`` is accepted for symmetry with MPI runs (each rank gets one thread).
    """
    del ranks_per_host
    return 1


def _threadpoolctl() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


class ThreadLimit:
    """A BLAS thread limit in force; ``restore()`` (or leaving a ``with`` block) puts back the previous one."""

    def __init__(self, n: int | None, limiter: Any) -> None:
        self.threads = n
        self._limiter = limiter

    def restore(self) -> None:
        """Put back the thread counts that were in force before this limit."""
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None

    def __enter__(self) -> ThreadLimit:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def __repr__(self) -> str:
        return f"ThreadLimit(threads={self.threads})"


def set_threads(n: int | str | None) -> ThreadLimit:
    """Limit NumPy's BLAS to ``n`` threads (``"auto"``: the measured policy) for the whole process.

    Returns a :class:`ThreadLimit`: call ``.restore()``, or use it as ``with cr.set_threads(1):``,
    to put back the previous counts. ``None`` or ``0`` changes nothing. Needs threadpoolctl
    (``pip install chainrule[train]``).

    Examples:
        >>> import chainrule as cr
        >>> with cr.set_threads(1) as limit:
        ...     limit.threads
        1
    """
    count = parse_threads(n, where="set_threads")
    if count == "auto":
        count = auto_threads()
    if count is None:
        return ThreadLimit(None, None)
    tpc = _threadpoolctl()
    if tpc is None:
        raise ImportError(
            f"set_threads({n!r}): needs threadpoolctl to change NumPy's BLAS threads at run time "
            "(pip install threadpoolctl, or chainrule[train]); or set OPENBLAS_NUM_THREADS before Python starts"
        )
    assert isinstance(count, int)
    return ThreadLimit(count, tpc.threadpool_limits(limits=count, user_api="blas"))


@contextlib.contextmanager
def threads_for_run(given: str | int | None = None, ranks_per_host: int = 1) -> Iterator[ThreadLimit | None]:
    """The policy for chainrule's own work (CLI, Trainer), for the duration of a ``with`` block.

    Without threadpoolctl the BLAS is left as it is (yields None).
    """
    count = requested_threads(given)
    if count == "auto":
        count = auto_threads(ranks_per_host)
    if count is None or _threadpoolctl() is None:
        yield None
        return
    with set_threads(count) as limit:
        yield limit


def blas_threads() -> int | None:
    """The BLAS thread count in force now (None when threadpoolctl is missing or finds no BLAS)."""
    tpc = _threadpoolctl()
    if tpc is None:
        return None
    counts = [info["num_threads"] for info in tpc.threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None
