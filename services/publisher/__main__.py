"""python -m cctriage_publish: the same as the cctriage-publish command."""

import sys

from cctriage_publish.cli import main

sys.exit(main())
