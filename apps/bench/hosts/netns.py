"""Hosts as network namespaces: `Lab(["broker", "w1", "w2"])` creates one namespace per
host (named `ocrlab-<pid>-<host>`), a bridge in the root namespace and one veth pair per
host, with addresses from one free /24 of 198.18.0.0/15 (the bridge holds .1, so this
process can reach every host). Processes started with `Lab.start` run inside a host, each
in a process group of its own. `cut`/`heal` set a host's link down and up; `block`/`unblock`
blackhole one address as seen from one host. Teardown (context exit, atexit, SIGINT/SIGTERM)
kills every process inside the namespaces and deletes namespaces, veths and the bridge.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.ops import launch

NET = ipaddress.IPv4Network("198.18.0.0/15")
PREFIX_FMT = "ocrlab-{pid}-"  # namespace names
LINK_FMT = "ol{pid}"  # veth and bridge names (15 characters at most)
CMD_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
TEARDOWN_STOP_S = 2.0  # then SIGKILL: nothing of the lab outlives it anyway
_LABS: list[Lab] = []
_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=check, timeout=CMD_TIMEOUT_S
    )


def hosts_available() -> tuple[bool, str]:
    """(True, "") when this process may create namespaces, veths and bridges; else why not."""
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return False, "network namespaces need root (CAP_NET_ADMIN)"
    probe = f"ocrlab-probe-{os.getpid()}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return False, f"cannot create a network namespace: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return True, ""


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 that no interface of this namespace uses yet."""
    used = ip("-4", "-o", "addr").stdout + ip("-4", "route").stdout
    subnets = list(NET.subnets(new_prefix=24))
    start = os.getpid() % len(subnets)
    for subnet in subnets[start:] + subnets[:start]:
        if f"{subnet.network_address}"[:-1] not in used:
            return subnet
    raise RuntimeError("no free /24 left in 198.18.0.0/15")


@dataclass
class Host:
    name: str
    netns: str
    veth: str  # the bridge side, in the root namespace
    peer: str  # the host side, inside the namespace
    addrs: list[str]  # addrs[0] is the host's main address

    @property
    def addr(self) -> str:
        return self.addrs[0]


class Lab:
    """The hosts; a context manager that always tears down what it made."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        extra_addrs: dict[str, int] | None = None,
        log_dir: Path | None = None,
    ):
        self.pid = os.getpid()
        self.prefix = PREFIX_FMT.format(pid=self.pid)
        self.link = LINK_FMT.format(pid=self.pid)
        self.bridge = f"{self.link}br"
        self.subnet = free_subnet()
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix))  # data: deleted at the end
        self.workdir.chmod(0o755)  # services run as their own users below it
        self.log_dir = log_dir or self.workdir  # logs: kept when given
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._names, self._extra = list(names), extra_addrs or {}
        self._down = False

    # --- setup and teardown ---

    def __enter__(self) -> Lab:
        with _LOCK:
            _LABS.append(self)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def _build(self) -> None:
        gateway = f"{self.subnet.network_address + 1}"
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        hosts = iter(self.subnet.hosts())
        next(hosts)  # the bridge's
        for i, name in enumerate(self._names):
            addrs = [f"{next(hosts)}" for _ in range(1 + self._extra.get(name, 0))]
            self.hosts[name] = self._add_host(name, i, addrs)

    def _add_host(self, name: str, index: int, addrs: list[str]) -> Host:
        host = Host(
            name, f"{self.prefix}{name}", f"{self.link}h{index}", f"{self.link}p{index}", addrs
        )
        ip("netns", "add", host.netns)
        ip("link", "add", host.veth, "type", "veth", "peer", "name", host.peer)
        ip("link", "set", host.peer, "netns", host.netns)
        ip("link", "set", host.veth, "master", self.bridge, "up")
        for addr in addrs:
            ip("-n", host.netns, "addr", "add", f"{addr}/24", "dev", host.peer)
        ip("-n", host.netns, "link", "set", host.peer, "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def teardown(self) -> None:
        """Kill every process of the lab, delete namespaces, veths and bridge. Idempotent."""
        if self._down:
            return
        self._down = True
        with launch.signals_ignored():
            launch.stop_groups(self.procs, timeout_s=TEARDOWN_STOP_S)
            for host in self.hosts.values():
                kill_namespace_processes(host.netns)
            for name in self.namespaces():
                kill_namespace_processes(name)
                ip("netns", "del", name, check=False)
            for link in self.links():
                ip("link", "del", link, check=False)
            self._keep_logs()
            shutil.rmtree(self.workdir, ignore_errors=True)
        with _LOCK, contextlib.suppress(ValueError):
            _LABS.remove(self)

    def _keep_logs(self) -> None:
        """Logs that services wrote under workdir (as their own users) go to log_dir."""
        if self.log_dir == self.workdir:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for path in self.workdir.glob("*.log"):
            with contextlib.suppress(OSError):
                shutil.copy(path, self.log_dir / path.name)

    def namespaces(self) -> list[str]:
        """This lab's namespaces that exist now."""
        out = ip("netns", "list", check=False).stdout.split()
        return [name for name in out if name.startswith(self.prefix)]

    def links(self) -> list[str]:
        """This lab's links (bridge, veths) that exist now in the root namespace."""
        out = ip("-o", "link", "show", check=False).stdout.splitlines()
        names = [line.split(":")[1].strip().split("@")[0] for line in out if ":" in line]
        return [name for name in names if name.startswith(self.link)]

    # --- processes ---

    def command(self, host: str, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[host].netns, *cmd]

    def run(self, host: str, cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside `host` to its end (checked; output captured)."""
        kwargs.setdefault("timeout", 120)
        done = subprocess.run(self.command(host, cmd), capture_output=True, text=True, **kwargs)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-600:]
            raise RuntimeError(f"{' '.join(cmd[:3])}... in {host} exited {done.returncode}: {tail}")
        return done

    def start(
        self,
        host: str,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = launch.ROOT,
    ) -> subprocess.Popen[bytes]:
        """Start `cmd` inside `host` in a group of its own, output to <log_dir>/<name>.log."""
        proc = launch.start(self.command(host, cmd), log=self.log(name), env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
        launch.stop_group(proc, timeout_s=timeout_s)
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # --- faults ---

    def cut(self, host: str) -> None:
        """Partition: the host's link down (it reaches nobody, nobody reaches it)."""
        ip("link", "set", self.hosts[host].veth, "down")

    def heal(self, host: str) -> None:
        ip("link", "set", self.hosts[host].veth, "up")

    def block(self, host: str, addr: str) -> None:
        """Partition of one pair: `host` drops what it sends to `addr`."""
        ip("-n", self.hosts[host].netns, "route", "add", "blackhole", f"{addr}/32")

    def unblock(self, host: str, addr: str) -> None:
        ip("-n", self.hosts[host].netns, "route", "del", "blackhole", f"{addr}/32", check=False)


def kill_namespace_processes(netns: str) -> None:
    """SIGKILL whatever still runs inside `netns` (daemons that left our groups: epmd...)."""
    out = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in out:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def teardown_all() -> None:
    for lab in list(_LABS):
        lab.teardown()


def _on_signal(signum, frame) -> None:
    teardown_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_handlers() -> None:
    """atexit and SIGTERM (and SIGINT where nothing handles it) tear every lab down; once
    per process, signals from the main thread only."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(teardown_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) == signal.SIG_DFL:  # Ctrl-C's KeyboardInterrupt unwinds
                signal.signal(sig, _on_signal)
