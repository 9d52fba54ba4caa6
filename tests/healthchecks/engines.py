"""Real container engines for the companion's tests: the harness's (harness/engines.py, harness/image.py)."""

from harness.engines import IMAGE, EngineDaemon
from harness.image import build_image_tar

__all__ = ["IMAGE", "EngineDaemon", "build_image_tar"]
