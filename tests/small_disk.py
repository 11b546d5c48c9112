"""A really full disk for tests, without root privileges: a small tmpfs mounted in a private user and mount namespace
(`unshare --user --map-root-user --mount`), seen only by the command run there. Where the kernel or a container
forbids unprivileged user namespaces, `small_disk_available` is False and the tests using it are skipped."""

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path


def on_small_disk(mount_dir: Path, size: str, command: list[str]) -> list[str]:
    """`command`, run with a tmpfs of `size` (e.g. "512k") mounted on the existing folder `mount_dir`."""
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs -o size="$0" tmpfs "$1" && shift && exec "$@"',
        size,
        str(mount_dir),
        *command,
    ]


@functools.cache
def small_disk_available() -> bool:
    """Whether `on_small_disk` works here (unshare installed and user namespaces allowed)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(on_small_disk(Path(folder), "64k", ["true"]), capture_output=True, timeout=30)
    return probe.returncode == 0
