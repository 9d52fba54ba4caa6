"""A busybox image without a registry: a rootfs of the host's static busybox and its applet links, as a tar
file either engine imports (``podman import`` / ``docker import``)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

__all__ = ["APPLETS", "BUSYBOX", "build_image_tar"]

BUSYBOX = Path("/bin/busybox")  # from busybox-static
APPLETS = (
    "sh",
    "httpd",
    "sleep",
    "cat",
    "echo",
    "rm",
    "touch",
    "test",
    "true",
    "false",
    "id",
    "ls",
    "kill",
    "wget",
    "yes",
    "head",
)


def build_image_tar(folder: Path) -> Path:
    """A rootfs with /bin/busybox and its applet links, web roots (/www with an index, /prime for the
    demo's replicas) and /tmp, as ``folder/image.tar``."""
    rootfs = folder / "rootfs"
    for sub in ("bin", "www", "prime", "tmp"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        link = rootfs / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    (rootfs / "www" / "index.html").write_text("hello\n")
    tar = folder / "image.tar"
    with tarfile.open(tar, "w") as out:
        out.add(rootfs, arcname=".")
    shutil.rmtree(rootfs)
    return tar
