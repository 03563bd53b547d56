"""``python -m deltanet``: the same as the ``deltanet`` command."""

from deltanet.cli import main

raise SystemExit(main())
