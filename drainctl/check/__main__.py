"""`python -m drainctl.check`: the same as `drainctl check`."""

import sys

from drainctl.check.command import main

sys.exit(main())
