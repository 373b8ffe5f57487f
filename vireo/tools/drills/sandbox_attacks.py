"""The catalogue of attacks on the code sandbox: real programs, each with the check that it held.

One copy, used twice: `tests/apps/test_sandbox_escapes.py` runs every attack through `run_python`
in CI, and the `sandbox_escapes` drill runs them in-process and through a real code job on a
private stack. (It lives with the drills because the drill is the attacker; the test imports it.)

Each program starts with a prelude that gives it `TARGET` (paths, pids and ports outside the
sandbox to aim at, never the secret itself) and `escaped(what)`, which it calls when an attempt
worked. An attack held when nothing called `escaped`, the secret planted outside appears nowhere
in its output, and the attack's own check on the host passed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vireo.apps.sandbox import SandboxLimits, SandboxResult, current_sandbox, run_python
from vireo.apps.sandbox.service import RemoteSandbox

PRELUDE = """import gc, json, os, sys
# every attack first switches off a guard living in its own interpreter, as issue 13's attacker did
# to the old audit hook (a hook cannot be removed, but its function's code can be swapped)
for _obj in gc.get_objects():
    if getattr(_obj, '__name__', None) == '_guard' and hasattr(_obj, '__code__'):
        _obj.__code__ = (lambda event, args: None).__code__
TARGET = json.loads({target!r})
def escaped(what):
    print('ESCAPED:', what, flush=True)
print('ATTACK-STARTED', flush=True)
"""


@dataclass
class Target:
    """What lies outside the sandbox: files, processes and a port holding or guarding a secret."""

    secret: str
    secret_files: list[str]  # stand-ins for Redis's AOF and the API key file, and the real ones
    outside_dir: str  # a folder outside the sandbox that must stay unwritten
    worker_pid: int  # the process that runs the sandbox
    bystander_pid: int  # another process of the host (holds the secret in its environment)
    port: int  # a TCP port listening on 127.0.0.1 (Redis, or its stand-in)
    marker: str = field(default_factory=lambda: f"vireo-survivor-{secrets.token_hex(6)}")
    connections: Callable[[], int] = lambda: 0  # connections the port has taken since the last call

    def as_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k not in ("secret", "connections")})

    def program(self, attack: "Attack") -> str:
        return PRELUDE.format(target=self.as_json()) + attack.program

    def alive(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def survivors(self) -> list[int]:
        """Processes anywhere on the host whose command line carries this target's marker."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if self.marker.encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


@dataclass
class Attack:
    name: str
    what: str
    program: str
    limits: SandboxLimits = field(default_factory=lambda: SandboxLimits(timeout_s=5))
    host_check: Callable[[SandboxResult, Target], str | None] | None = None  # a failure message, or None
    short: bool = True  # part of the drill's short run
    # reaches past its own processes or files: without bwrap's namespaces, run as root, `kill -9 -1`
    # ends every process of the machine, PTRACE_ATTACH stops pid 1, writes land in /usr
    hazardous: bool = False

    def failure(self, result: SandboxResult, target: Target) -> str | None:
        """Why the attack got through, or None when the sandbox held."""
        output = result.stdout + result.stderr
        if "ATTACK-STARTED" not in result.stdout:  # a program that never ran proves nothing
            return f"the attack never started (exit {result.exit_code}: {result.stderr[-300:]!r})"
        if "ESCAPED:" in output:
            return "; ".join(line for line in output.splitlines() if line.startswith("ESCAPED:"))[:500]
        if target.secret in output:
            return "the secret planted outside appears in the program's output"
        return self.host_check(result, target) if self.host_check else None


async def attempt(attack: Attack, target: Target) -> SandboxResult:
    """Run one attack through `run_python`. A hazardous one is refused unless the sandbox gives the
    program a PID namespace of its own (bwrap, here or in the service)."""
    if attack.hazardous and not await _has_own_pid_namespace():
        raise RuntimeError(f"refusing to run {attack.name!r} without bwrap: it would hit this machine's processes")
    return await run_python(target.program(attack), attack.limits)


async def _has_own_pid_namespace() -> bool:
    sandbox = await current_sandbox()
    if isinstance(sandbox, RemoteSandbox):
        return await sandbox.ping() == "bwrap"
    return sandbox.isolation == "bwrap"


def _bystander_alive(result: SandboxResult, target: Target) -> str | None:
    for pid, name in ((target.worker_pid, "the worker"), (target.bystander_pid, "a bystander process")):
        if not target.alive(pid):
            return f"{name} (pid {pid}) was killed"
    return None


def _no_survivors(result: SandboxResult, target: Target) -> str | None:
    deadline = time.monotonic() + 2.0  # a killed namespace's processes take a moment to go
    while (left := target.survivors()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"processes outlived the run: {left}" if left else None


def _ended_in_time(result: SandboxResult, target: Target) -> str | None:
    if result.duration_s > PROCESS_LIMITS.timeout_s + 5:
        return f"the run took {result.duration_s} s with a {PROCESS_LIMITS.timeout_s} s limit"
    return _no_survivors(result, target) or _bystander_alive(result, target)


def _no_connection(result: SandboxResult, target: Target) -> str | None:
    taken = target.connections()
    return f"the port on 127.0.0.1 took {taken} connection(s)" if taken else None


PROCESS_LIMITS = SandboxLimits(timeout_s=3)


def _output_capped(result: SandboxResult, target: Target) -> str | None:
    if not result.output_limited:
        return "1 GB of output was not stopped at the cap"
    if len(result.stdout) > 10_000:
        return f"{len(result.stdout)} characters of output were kept"
    return None


def _nothing_written_outside(result: SandboxResult, target: Target) -> str | None:
    written = list(Path(target.outside_dir).glob("escaped*"))
    return f"files appeared outside: {written}" if written else None


def _tmpfs_bounded(result: SandboxResult, target: Target) -> str | None:
    wrote = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("WROTE_MB")]
    bound = 4 * SandboxLimits().file_mb + SandboxLimits().file_mb
    return f"wrote {wrote[0]} MB into the sandbox's memory" if wrote and wrote[0] > bound else None


SURVIVOR = (
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        sleeper = [sys.executable, '-c', 'import time; time.sleep(120)', TARGET['marker']]\n"
    "        os.execv(sys.executable, sleeper)\n"
    "    os._exit(0)\n"
)

ATTACKS = [
    Attack(
        "audit_hook_off",
        "with the in-interpreter guard off (the prelude), do what the issue did: read "
        "/etc/passwd and the secrets, run `id` as root",
        """
import subprocess
sys.addaudithook(lambda *a: None)     # hooks only add up; whatever a program adds must not matter
for path in ['/etc/passwd', *TARGET['secret_files']]:
    try:
        escaped(f'read {path}: {open(path).read()[:60]!r}')
    except OSError as exc:
        print('blocked', path, exc)
try:
    out = subprocess.run(['id'], capture_output=True, text=True).stdout
    if 'uid=0' in out:
        escaped('ran id as root: ' + out)
except OSError as exc:
    print('no id:', exc)
""",
    ),
    Attack(
        "read_system_files",
        "read /etc/passwd, /etc/shadow and the host's other /etc files",
        """
for path in ['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf',
             '/proc/1/root/etc/passwd', '/proc/self/root/etc/passwd']:
    try:
        data = open(path).read()
        if data.strip():
            escaped(f'read {path}: {data[:60]!r}')
    except OSError as exc:
        print('blocked', path, exc)
""",
    ),
    Attack(
        "read_secret_files",
        "read Redis's AOF and the API key file (stand-ins outside, and the real "
        "paths), directly and through /proc/<pid>/root and cwd",
        """
paths = list(TARGET['secret_files'])
paths += ['/root/.cache/vireo/api-key', '/var/lib/redis/appendonly.aof', '/data/appendonly.aof',
          '/data/vireo/api-key', '/root/.cache/vireo/venv/pyvenv.cfg']
for pid in (1, TARGET['worker_pid'], TARGET['bystander_pid'], os.getppid()):
    paths += [f'/proc/{pid}/root{p}' for p in TARGET['secret_files']] + [f'/proc/{pid}/cwd']
for path in paths:
    try:
        if os.path.isdir(path) and not os.path.samefile(path, '.'):  # pid 1 here is the sandbox's own init
            escaped(f'listed {path}: {os.listdir(path)[:10]}')
        elif os.path.isdir(path):
            print('own folder', path)
        else:
            escaped(f'read {path}: {open(path, "rb").read()[:60]!r}')
    except OSError as exc:
        print('blocked', path, type(exc).__name__)
""",
    ),
    Attack(
        "environ_peek",
        "read the worker's and other processes' environments (/proc/*/environ, its own) "
        "for Vireo's keys and Redis's address",
        """
WANTED = (b'VIREO_', b'REDIS_URL', b'API_KEY')
if any(name.encode().startswith(WANTED) or name.encode() in WANTED for name in os.environ):
    escaped(f'own environment: {dict(os.environ)}')
pids = {'self', '1', str(os.getppid()), str(TARGET['worker_pid']), str(TARGET['bystander_pid'])}
pids |= {p for p in os.listdir('/proc') if p.isdigit()}
for pid in sorted(pids):
    try:
        environ = open(f'/proc/{pid}/environ', 'rb').read()
    except OSError as exc:
        print('blocked', pid, type(exc).__name__)
        continue
    found = [v for v in environ.split(b'\\0') if any(w in v for w in WANTED)]
    print(pid, len(environ), 'bytes of environment')
    if found:
        escaped(f'/proc/{pid}/environ: {found[:5]}')
""",
    ),
    Attack(
        "list_private_dirs",
        "list /root, /home, Redis and Vireo data folders and the folder outside",
        """
for path in ['/root', '/home', '/var', '/data', '/srv', '/run', '/work', '/mnt', TARGET['outside_dir']]:
    try:
        entries = os.listdir(path)
        if entries:
            escaped(f'listed {path}: {entries[:10]}')
    except OSError as exc:
        print('blocked', path, type(exc).__name__)
""",
    ),
    Attack(
        "signal_the_worker",
        "SIGKILL the parent, the worker's pid, a bystander and every process group",
        """
import signal
for pid in (os.getppid(), TARGET['worker_pid'], TARGET['bystander_pid'], 1):
    for send in (os.kill, os.killpg):
        try:
            send(pid, signal.SIGKILL)
            print('sent', send.__name__, pid)
        except OSError as exc:
            print('blocked', send.__name__, pid, type(exc).__name__)
""",
        host_check=_bystander_alive,
        hazardous=True,
    ),
    Attack(
        "kill_everything",
        "kill -9 -1: every process the program may signal",
        """
import signal
os.kill(-1, signal.SIGKILL)
""",
        host_check=_bystander_alive,
        hazardous=True,
    ),
    Attack(
        "fork_bomb",
        "fork without end (every process carries a marker looked for afterwards)",
        """
bomb = 'import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n'
os.execv(sys.executable, [sys.executable, '-c', bomb, TARGET['marker']])
""",
        limits=PROCESS_LIMITS,
        host_check=_ended_in_time,
        hazardous=True,
        short=False,
    ),
    Attack(
        "setsid_survivor",
        "a setsid double-forked child that sleeps past the deadline while the program waits for it",
        "import time\nif os.fork() == 0:\n" + SURVIVOR + "time.sleep(60)\n",
        limits=PROCESS_LIMITS,
        host_check=_ended_in_time,
        short=False,
    ),
    Attack(
        "orphan_after_exit",
        "a setsid double-forked child left behind by a program that exits at once",
        "if os.fork() == 0:\n" + SURVIVOR + "print('leaving')\n",
        limits=PROCESS_LIMITS,
        host_check=_ended_in_time,
    ),
    Attack(
        "huge_output",
        "print 1 GB to stdout",
        """
chunk = 'x' * (1 << 20)
for _ in range(1024):
    sys.stdout.write(chunk)
""",
        host_check=_output_capped,
    ),
    Attack(
        "network",
        "connect to Redis's port and the port of the worker's host on 127.0.0.1",
        """
import socket
for port in (TARGET['port'], 6379, 8000):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
        escaped(f'connected to 127.0.0.1:{port}')
    except OSError as exc:
        print('blocked', port, type(exc).__name__)
try:
    socket.getaddrinfo('localhost', 80)
    print('resolved localhost')
except OSError as exc:
    print('no resolver', type(exc).__name__)
""",
        host_check=_no_connection,
    ),
    Attack(
        "write_outside",
        "write into the folder outside, /, /usr, /opt/python, /etc and through /proc",
        """
for path in [TARGET['outside_dir'] + '/escaped.txt', '/escaped.txt', '/usr/lib/escaped.txt',
             '/opt/python/escaped.txt', '/etc/escaped.txt', '/dev/escaped.txt', '/proc/sys/kernel/hostname',
             f"/proc/{TARGET['worker_pid']}/root{TARGET['outside_dir']}/escaped.txt"]:
    try:
        with open(path, 'w') as f:
            f.write('x')
        escaped(f'wrote {path}')
    except OSError as exc:
        print('blocked', path, type(exc).__name__)
""",
        host_check=_nothing_written_outside,
        hazardous=True,
    ),
    Attack(
        "fill_memory_tmpfs",
        "write 16 MB files until the disk is full (the sandbox's disk is memory)",
        """
total = 0
try:
    for i in range(200):
        with open(f'fill{i}', 'wb') as f:
            f.write(b'x' * (16 << 20))
        total += 16
except OSError as exc:
    print('stopped', type(exc).__name__)
print('WROTE_MB', total)
""",
        host_check=_tmpfs_bounded,
        hazardous=True,
        short=False,
    ),
    Attack(
        "ptrace",
        "ptrace: attach to pid 1 and the parent, TRACEME, process_vm_readv",
        """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for request, pid in ((16, 1), (16, os.getppid()), (0, 0)):       # PTRACE_ATTACH, PTRACE_TRACEME
    if libc.ptrace(request, pid, None, None) == 0:
        escaped(f'ptrace({request}, {pid}) worked')
print('ptrace errno', ctypes.get_errno())
""",
        hazardous=True,
    ),
    Attack(
        "namespaces_and_mounts",
        "unshare new user/mount/net namespaces, setns into pid 1's, mount tmpfs, chroot",
        """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for flag in (0x10000000, 0x00020000, 0x40000000, 0x20000000):  # NEWUSER, NEWNS, NEWNET, NEWPID
    if libc.unshare(flag) == 0:
        escaped(f'unshare({flag:#x}) worked')
for ns in ('net', 'mnt', 'user', 'pid'):
    try:
        fd = os.open(f'/proc/1/ns/{ns}', os.O_RDONLY)
        if libc.setns(fd, 0) == 0:
            escaped(f'setns into pid 1 {ns}')
    except OSError as exc:
        print('no', ns, type(exc).__name__)
if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0:
    escaped('mounted a tmpfs')
if libc.chroot(b'/tmp') == 0:
    escaped('chroot worked')
""",
        hazardous=True,
    ),
    Attack(
        "kernel_interfaces",
        "bpf, keyctl, perf_event_open, io_uring, userfaultfd, kexec, init_module by syscall number",
        """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
numbers = {'x86_64': {'bpf': 321, 'keyctl': 250, 'perf_event_open': 298, 'io_uring_setup': 425,
                      'userfaultfd': 323, 'kexec_load': 246, 'init_module': 175, 'add_key': 248},
           'aarch64': {'bpf': 280, 'keyctl': 219, 'perf_event_open': 241, 'io_uring_setup': 425,
                       'userfaultfd': 282, 'kexec_load': 104, 'init_module': 105, 'add_key': 217}}
for name, nr in numbers.get(platform.machine(), {}).items():
    buf = ctypes.create_string_buffer(256)
    result = libc.syscall(nr, 0, buf, 0, 0, 0)
    print(name, result, ctypes.get_errno())
    if result >= 0 or ctypes.get_errno() != 1:  # refused before the kernel looks at the call: EPERM
        escaped(f'{name} reached the kernel (returned {result}, errno {ctypes.get_errno()})')
""",
        hazardous=True,
    ),
    Attack(
        "raise_limits_and_ids",
        "raise the rlimits back, setuid(0)/setgid(0)",
        """
import resource
for name in ('RLIMIT_NPROC', 'RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE'):
    limit = getattr(resource, name)
    try:
        resource.setrlimit(limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        escaped(f'raised {name}')
    except (ValueError, OSError) as exc:
        print('kept', name, exc)
for change in (os.setuid, os.setgid):
    try:
        change(0)
        escaped(f'{change.__name__}(0) worked')
    except OSError as exc:
        print('kept', change.__name__, exc)
if os.getuid() == 0 or os.geteuid() == 0:
    escaped('runs as uid 0')
""",
    ),
    Attack(
        "leaked_descriptors",
        "read every open file descriptor and where it points",
        """
for fd in range(3, 1024):
    try:
        target = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        continue
    print(fd, target)
    if any(target.startswith(p) for p in (TARGET['outside_dir'], '/root', '/home', '/work', '/var')):
        escaped(f'fd {fd} points outside: {target}')
    try:
        os.lseek(fd, 0, 0)
        print(os.read(fd, 4000))
    except OSError:
        pass
""",
    ),
    Attack(
        "memory_hog",
        "allocate 4 GB at once and grow a list until something gives",
        """
try:
    block = bytearray(4 << 30)
    escaped('allocated 4 GB')
except MemoryError:
    print('4 GB refused')
chunks = []
try:
    while True:
        chunks.append(bytearray(64 << 20))
except MemoryError:
    print('stopped at', len(chunks) * 64, 'MB')
    if len(chunks) * 64 > SANDBOX_MB:
        escaped(f'held {len(chunks) * 64} MB')
""".replace("SANDBOX_MB", str(SandboxLimits().memory_mb)),
        host_check=_bystander_alive,
        short=False,
    ),
]
SHORT = [a for a in ATTACKS if a.short]


class LocalTarget:
    """`with LocalTarget() as target:` plants the secret outside (files, a bystander's environment, this
    process's environment), opens a port and starts a bystander process; all removed on exit."""

    def __enter__(self) -> Target:
        self.dir = tempfile.mkdtemp(prefix="vireo-outside-")
        os.chmod(self.dir, 0o755)  # only the sandbox's walls, not file modes, may keep the files out
        secret = f"vireo-secret-{secrets.token_hex(8)}"
        files = []
        for relative in ("redis/appendonly.aof", ".cache/vireo/api-key"):
            path = Path(self.dir) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"*3\r\n$3\r\nSET\r\n$7\r\napi-key\r\n${len(secret)}\r\n{secret}\r\n")
            for part in (path, *path.relative_to(self.dir).parents):
                os.chmod(Path(self.dir) / part, 0o755 if (Path(self.dir) / part).is_dir() else 0o644)
            files.append(str(path))
        self.old_env = os.environ.get("VIREO_DRILL_SECRET")
        os.environ["VIREO_DRILL_SECRET"] = secret
        self.bystander = subprocess.Popen(["sleep", "600"], env={"PATH": "/usr/bin:/bin", "VIREO_API_KEY": secret})
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.target = Target(
            secret=secret,
            secret_files=files,
            outside_dir=self.dir,
            worker_pid=os.getpid(),
            bystander_pid=self.bystander.pid,
            port=self.listener.getsockname()[1],
            connections=self._connections,
        )
        return self.target

    def _connections(self) -> int:
        count = 0
        while True:
            try:
                self.listener.accept()[0].close()
                count += 1
            except BlockingIOError:
                return count

    def __exit__(self, *exc) -> None:
        for pid in self.target.survivors():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.bystander.kill()
        self.bystander.wait()
        self.listener.close()
        if self.old_env is None:
            os.environ.pop("VIREO_DRILL_SECRET", None)
        else:
            os.environ["VIREO_DRILL_SECRET"] = self.old_env
        shutil.rmtree(self.dir, ignore_errors=True)
