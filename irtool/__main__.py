"""``python -m irtool``: the ``irtool`` command line (see ``irtool.cli``)."""

from irtool.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
