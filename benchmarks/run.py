"""Run the benchmark: ``python benchmarks/run.py [--backend memory] [--runs N]``.

The same as ``actorflow bench``; the code lives in ``actorflow.bench`` so an installed
package can run it too.
"""

import sys

from actorflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
