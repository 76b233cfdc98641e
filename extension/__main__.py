"""``python -m postconv ...`` runs the same CLI as the ``postconv`` command."""

import sys

from postconv.cli import main

sys.exit(main())
