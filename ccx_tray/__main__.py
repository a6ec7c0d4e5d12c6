"""`python -m ccx_tray`: the same as the `ccx-tray` command."""

import sys

from ccx_tray.cli import main

if __name__ == "__main__":
    sys.exit(main())
