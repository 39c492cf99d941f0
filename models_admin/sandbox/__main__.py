"""``python -m models_admin.sandbox``: see ``cli``."""

from __future__ import annotations

import sys

from models_admin.sandbox.cli import main

sys.exit(main())
