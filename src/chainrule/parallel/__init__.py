"""Training that outgrows one memory: microbatching, data parallelism and pipeline parallelism over MPI.

Run with ``mpiexec -n N chainrule train --parallel data|pipeline`` (the ``mpi`` extra installs
mpi4py and MPICH). See docs/parallel.md.
"""

from chainrule.parallel.accumulate import accumulate, split
from chainrule.parallel.comm import Comm, ParallelError, PeerFailed, PeerTimeout
from chainrule.parallel.data import DataParallel, buckets, shard
from chainrule.parallel.failure import RankFailed, RanksDisagree, failing_together
from chainrule.parallel.pipeline import Pipeline, balance, layer_costs
from chainrule.parallel.plan import Plan
from chainrule.parallel.sharded import ShardedDataParallel

__all__ = [
    "Comm",
    "DataParallel",
    "ParallelError",
    "PeerFailed",
    "PeerTimeout",
    "Pipeline",
    "Plan",
    "RankFailed",
    "RanksDisagree",
    "ShardedDataParallel",
    "accumulate",
    "balance",
    "buckets",
    "failing_together",
    "layer_costs",
    "shard",
    "split",
]
