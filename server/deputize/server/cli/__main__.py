"""``python -m deputize.server.cli``: the same as the ``deputize`` command."""

import sys

from deputize.server.cli import main

sys.exit(main())
