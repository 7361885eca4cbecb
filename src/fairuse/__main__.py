"""``python -m fairuse`` runs the CLI."""

import sys

from fairuse.cli import main

sys.exit(main())
