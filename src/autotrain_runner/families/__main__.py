"""`python -m autotrain_runner.families`: the family check (see `harness`)."""

import sys

from autotrain_runner.families.harness import main

sys.exit(main())
