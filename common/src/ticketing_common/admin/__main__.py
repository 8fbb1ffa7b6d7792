"""`python -m ticketing_common.admin ...`: the operator command (see the package's docstring)."""

import sys

from ticketing_common.admin import main

sys.exit(main())
