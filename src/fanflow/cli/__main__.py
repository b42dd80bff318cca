"""Run the ``fanflow`` command as ``python -m fanflow.cli`` (where the script is not on PATH)."""

import sys

from fanflow.cli import main

sys.exit(main())
