"""`python -m local_exporter` is the same as the `local-exporter` command."""

import sys

from local_exporter.cli import main

sys.exit(main())
