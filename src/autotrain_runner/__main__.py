import sys

from autotrain_runner.cli.main import main

sys.exit(main())
