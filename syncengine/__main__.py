"""``python -m syncengine`` and the ``syncengine`` command.

``syncengine rsync ARGV`` is what scripts call in place of rsync, often many
times: it skips click (and the facade's imports) unless help is asked for,
which click renders."""

import _signal  # type: ignore[import-not-found]  # (the C module: `signal` imports enum)
import os
import sys

_STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def _stopped_while_starting(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM or SIGHUP before a command runs (while Python
    imports, or click parses): nothing has started yet, so say what a later
    signal says and leave at once, with rsync's code 20 -- not a
    KeyboardInterrupt traceback from whatever was being imported."""
    argv = sys.argv[1:]
    if argv[:1] == ["rsync"]:
        line = "rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)\n"
    else:
        line = "syncengine: error: interrupted\n"
        if "--json" in argv:
            _write(1, '{"event": "summary", "command": "%s", "exit_code": 20, '
                      '"error": "interrupted"}\n' % (argv[0] if argv[0].isalpha() else ""))
    _write(2, line)
    os._exit(20)


def _write(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


def stop_at_once_on_signals() -> None:
    """Until a command installs its own handling (cli.app.run_guarded,
    standin.cancel_on_signals), a stop signal ends the process at once."""
    for signum in _STOP_SIGNALS:
        _signal.signal(signum, _stopped_while_starting)


stop_at_once_on_signals()


def main() -> None:
    stop_at_once_on_signals()  # (the `syncengine` script imports this module, then calls main)
    _arm_crash_hook_if_asked()
    argv = sys.argv[1:]
    if argv[:1] == ["rsync"]:
        rest = argv[1:]
        options = rest[:rest.index("--")] if "--" in rest else rest
        if "--help" not in options:
            from syncengine.standin import run_standin
            _exit_at_once(run_standin(rest))
    from syncengine.cli import main as cli_main
    cli_main()


def _arm_crash_hook_if_asked() -> None:
    """The test-only crash hook, when the environment asks for it (imported
    only then: the stand-in's start-up is its speed)."""
    if "SYNCENGINE_CRASH_AFTER" in os.environ or "SYNCENGINE_STALL_AFTER" in os.environ:
        from syncengine.environment import arm_crash_hook
        arm_crash_hook()


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
