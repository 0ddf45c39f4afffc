"""``python -m granite_index.cli``: the ``granite-index`` command."""

import sys

from granite_index.cli import main

sys.exit(main())
