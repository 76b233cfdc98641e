"""``python -m postconv.cli``: the ``postconv`` command."""

from postconv.cli.commands import main

raise SystemExit(main())
