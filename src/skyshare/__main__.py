"""``python -m skyshare ...``: the ``skyshare`` command without the installed script."""

from skyshare.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    raise SystemExit(main())
