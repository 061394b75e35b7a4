"""``python -m skyshare ...``: the ``skyshare`` command without the installed script."""

from skyshare.cli import main

raise SystemExit(main())
