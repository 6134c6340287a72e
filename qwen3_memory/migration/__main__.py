"""``python -m qwen3_memory.migration COMMAND``: the command line face of the migration engine."""

import sys

from qwen3_memory.migration.cli import main

sys.exit(main())
