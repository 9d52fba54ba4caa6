"""``python -m healthchecks`` is ``upstreams-registrar``."""

import sys

from .cli import main

sys.exit(main())
