"""The seccomp filter bwrap installs before it runs a sandboxed program (built with libseccomp).

Namespaces already keep these calls from reaching anything outside; the filter shuts the kernel
interfaces themselves, which are where sandbox escapes usually start (ptrace, new namespaces,
keyrings, eBPF, perf, io_uring, module loading, mounts). Denied calls fail with EPERM, so a
program sees an ordinary error; a call from another architecture's ABI (32-bit `int 0x80`) kills it.
"""

from __future__ import annotations

import errno
import functools
import os

DENIED = (
    # other processes' memory and the kernel's tracing and debugging interfaces
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "kcmp",
    "pidfd_getfd",
    "lookup_dcookie",
    "syslog",
    # namespaces and mounts: the filesystem view and the walls are bwrap's, set before the filter
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    # kernel keyrings, modules, kexec, reboot, swap, accounting, quotas, clocks
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    # io_uring (a large attack surface that bypasses this filter's view of calls), raw I/O ports
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "iopl",
    "ioperm",
    "fanotify_init",
    "nfsservctl",
    "uselib",
    "vhangup",
    "personality",
)
# clone with any of these flags makes a new namespace; unshare and setns are denied outright
NAMESPACE_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
TIOCSTI = 0x5412  # push characters into a terminal's input


class SeccompUnavailable(RuntimeError):
    """libseccomp (Debian `libseccomp2`) or its Python binding (`pyseccomp`) is missing."""


@functools.lru_cache(maxsize=1)
def filter_program() -> bytes:
    """The compiled BPF program for this machine's architecture (built once per process)."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: the binding found no libseccomp
        raise SeccompUnavailable(
            f"cannot build the seccomp filter: {exc} (apt-get install libseccomp2; pip install pyseccomp)"
        ) from exc
    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        _add(rules, deny, name)
    for flag in NAMESPACE_FLAGS:
        _add(rules, deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes libc fall back to clone
    _add(rules, sc.ERRNO(errno.ENOSYS), "clone3")
    _add(rules, deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))
    with os.fdopen(os.memfd_create("vireo-seccomp"), "w+b") as program:
        rules.export_bpf(program)
        program.seek(0)
        return program.read()


def _add(rules, action: int, name: str, *args) -> None:
    """Add one rule; a call this kernel's architecture does not have needs none."""
    import pyseccomp as sc

    if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
        return
    rules.add_rule(action, name, *args)
