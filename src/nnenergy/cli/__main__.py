"""`python -m nnenergy.cli COMMAND ...`: the same as the `nnenergy` command."""

import sys

from nnenergy.cli import main

sys.exit(main())
