"""``python -m syncengine`` and the ``syncengine`` command.

``syncengine rsync ARGV`` is what scripts call in place of rsync, often many
times: it skips click (and the facade's imports) unless help is asked for,
which click renders."""

import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["rsync"]:
        rest = argv[1:]
        options = rest[:rest.index("--")] if "--" in rest else rest
        if "--help" not in options:
            from syncengine.standin import run_standin
            _exit_at_once(run_standin(rest))
    from syncengine.cli import main as cli_main
    cli_main()


def _exit_at_once(code: int) -> None:
    """End the process without the interpreter's teardown: it takes
    longer (about 10 ms) than all the work of a small run, and nothing is
    left to do once the output is flushed (a flush that fails goes the
    usual way, which reports it)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    main()
