"""Which watchdog observer sees a root: kernel events (inotify, FSEvents, ReadDirectoryChangesW) where the
filesystem delivers them, polling where it does not (network shares, some container volumes) or when asked."""

from __future__ import annotations

import os
from pathlib import Path

# Filesystems whose changes made elsewhere (another machine, the host of a VM or container) raise no local events.
NO_EVENTS_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "vboxsf",
                "vmhgfs", "prl_fs", "drvfs", "davfs", "fuse.sshfs", "fuse.rclone", "fuse.davfs2", "fuse.s3fs",
                "fuse.gcsfuse", "fuse.glusterfs", "fuse.vmhgfs-fuse", "fuse.grpcfuse", "fakeowner", "fuse.osxfs"}


def fs_type(path: Path) -> str | None:
    """The type of the filesystem `path` lives on (Linux /proc/mounts; None elsewhere or when unknown)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


def polling_reason(path: Path) -> str | None:
    """Why `path` must be polled, or None when kernel events can be trusted for it."""
    kind = fs_type(path)
    if kind in NO_EVENTS_FS:
        return f"{kind} filesystem delivers no change events"
    return None


def make_observer(poll_s: float | None):
    """A started-later observer: kernel events (poll_s None) or polling every `poll_s` seconds."""
    if poll_s is None:
        from watchdog.observers import Observer

        return Observer()
    from watchdog.observers.polling import PollingObserver

    return PollingObserver(timeout=poll_s)
