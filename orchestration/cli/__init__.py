"""The ``retentext`` command: one module per command group, registered by ``main``."""

from orchestration.cli.main import main

__all__ = ["main"]
