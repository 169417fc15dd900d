"""``python -m syncengine``: the command line (needs click, a dependency)."""

from syncengine.cli import main

if __name__ == "__main__":
    main()
