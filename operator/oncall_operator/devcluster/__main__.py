"""``python -m oncall_operator.devcluster up|down|status``."""

import sys

from .commands import main

sys.exit(main())
