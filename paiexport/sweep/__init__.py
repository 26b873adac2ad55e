"""`paiexport sweep`: the Cartesian product of recipe values x seeds, one run folder each.

`plan` plans and validates every run (grid x seeds, dense baselines, shards), `backends`
runs them here or on Ray, `collect` reads their results, `plan_file` writes and reads
sweep.json, and `run` ties these together for the CLI (resume, --shard, --collect).
"""

from paiexport.sweep.backends import LocalBackend, RayBackend, make_backend, run_one
from paiexport.sweep.collect import collect, is_complete
from paiexport.sweep.plan import GridAxis, PlannedRun, parse_grid, parse_shard, plan_sweep, shard
from paiexport.sweep.plan_file import read_plan, write_plan
from paiexport.sweep.run import collect_sweep, execute, run_sweep

__all__ = [
    "GridAxis",
    "LocalBackend",
    "PlannedRun",
    "RayBackend",
    "collect",
    "collect_sweep",
    "execute",
    "is_complete",
    "make_backend",
    "parse_grid",
    "parse_shard",
    "plan_sweep",
    "read_plan",
    "run_one",
    "run_sweep",
    "shard",
    "write_plan",
]
