"""``python -m ryll``: the same as the ``ryll`` command."""

import sys

from ryll.cli.main import main

sys.exit(main())
