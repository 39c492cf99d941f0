#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["sandbox"]:
        # The sandbox needs neither the settings nor their secrets: serve it without them.
        from models_admin.sandbox.cli import main as sandbox

        sys.exit(sandbox(sys.argv[2:]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
