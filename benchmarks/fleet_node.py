"""A benchmark fleet node: the 3-step workflow with shards, claiming roles through the database.

Usage: python fleet_node.py postgres DSN SCHEMA WORK_MS [private]
       python fleet_node.py sqlite PATH WORK_MS [private]

Each step does WORK_MS milliseconds of pure-Python work (0: instant). ``private``: claim
roles through a scheduler of the node's own (no lease table, no heartbeats), to tell
the heartbeats' share of the database's load. Prints
"ready NODE_ID" once started; stops cleanly on SIGTERM.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_flow import adapters_for, builder

import actorflow as af
from actorflow._signals import run_until_stopped


def main(args: list[str]) -> int:
    """Run the node until SIGTERM/SIGINT."""
    faulthandler.register(signal.SIGUSR1)  # the threads' stacks on stderr, for a node that will not stop
    shared = args[-1] != "private"
    if not shared:
        args = args[:-1]
    work = float(args[-1]) / 1000
    wf = builder(work).build(*adapters_for(args[:-1], shared_roles=shared))
    supervisor = af.Supervisor([wf], metrics_port=None)
    run_until_stopped(supervisor, lambda: print(f"ready {supervisor.node_id}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
