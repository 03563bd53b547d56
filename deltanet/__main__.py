"""``python -m deltanet``: the same as the ``deltanet`` command."""

import sys

try:
    from deltanet.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command's modules load: no traceback either
    print("deltanet: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
