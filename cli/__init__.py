"""The ``syncengine`` command (installed as the subpackage syncengine.cli)."""

from .app import main

__all__ = ["main"]
