"""The ``syncengine`` command (installed as the subpackage syncengine.cli)."""

from .app import app, main
from .standin import rsync_command

app.add_command(rsync_command)

__all__ = ["app", "main"]
