"""``python -m agents.cli``: the same as ``arith-rl``."""

import sys

from agents.cli import main

sys.exit(main())
