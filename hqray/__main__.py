"""`python -m hqray` behaves like `hqray`."""

import sys

from hqray.cli import main

sys.exit(main())
