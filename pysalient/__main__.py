"""``python -m pysalient`` runs the command-line interface."""

import sys

from pysalient.cli import main

sys.exit(main())
