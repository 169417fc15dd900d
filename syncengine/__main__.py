"""``python -m syncengine`` and the ``syncengine`` command.

``syncengine rsync ARGV`` is what scripts call in place of rsync, often many
times: it skips click (and the facade's imports) unless help is asked for,
which click renders."""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["rsync"]:
        rest = argv[1:]
        options = rest[:rest.index("--")] if "--" in rest else rest
        if "--help" not in options:
            from syncengine.standin import run_standin
            sys.exit(run_standin(rest))
    from syncengine.cli import main as cli_main
    cli_main()


if __name__ == "__main__":
    main()
