"""`python -m fastsource`: the `fastsource` command."""
import sys

from fastsource.cli.main import main

sys.exit(main())
