"""``python -m actorflow``: the ``actorflow`` command, for environments without the console script on PATH."""

import sys

from actorflow.cli import main

sys.exit(main())
