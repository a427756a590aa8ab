"""``python -m bridge``: the same CLI as the ``popbridge`` command."""

from bridge.cli import main

raise SystemExit(main())
