"""A private local Ray that tuneorch starts listens on 127.0.0.1 only, every port of it.

The check reads the kernel's socket tables (/proc/net/tcp, tcp6) and each process's open file
descriptors: no `ss`/`netstat` needed, and only the processes this test started are looked at.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not pathlib.Path("/proc/net/tcp").exists(), reason="needs Linux /proc")

# Started in a child so that this pytest process's shared Ray is not the one inspected. The
# child prints the listening sockets of itself and every process below it while Ray runs.
_SCRIPT = textwrap.dedent("""
    import json, os
    from orchestrator import cluster
    cluster.connect(None)
    import ray

    @ray.remote(num_cpus=0)
    def pid():
        return os.getpid()

    ray.get(pid.remote())  # a worker started, serving its own port
    from test_loopback import listening_sockets, process_tree
    print("SOCKETS", json.dumps(listening_sockets(process_tree(os.getpid()))), flush=True)
    ray.shutdown()
""")


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (from /proc/<pid>/task/<tid>/children)."""
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def _listening_inodes() -> dict[str, str]:
    """``{socket inode: "address:port"}`` of every TCP socket in LISTEN state on this host."""
    out = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":  # LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(raw)
            out[inode] = f"{address}:{int(hex_port, 16)}"
    return out


def listening_sockets(pids: set[int]) -> list[list]:
    """``[[pid, process name, "address:port"], ...]`` for the listening sockets ``pids`` hold."""
    listening = _listening_inodes()
    out = []
    for pid in sorted(pids):
        try:
            name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = target[len("socket:["):-1]
                if inode in listening:
                    out.append([pid, name, listening[inode]])
    return out


def _is_loopback(address_port: str) -> bool:
    address = ipaddress.ip_address(address_port.rsplit(":", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def test_a_private_local_ray_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "RAY_ADDRESS": "", "HOME": str(tmp_path)}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("SOCKETS ")]
    assert line, done.stderr[-3000:]
    import json

    sockets = json.loads(line[0][len("SOCKETS "):])
    names = {name for _, name, _ in sockets}
    # GCS, raylet and a worker at least: the check saw Ray's servers, not an empty list.
    assert {"gcs_server", "raylet"} <= names, sockets
    exposed = [s for s in sockets if not _is_loopback(s[2])]
    assert not exposed, f"listening beyond 127.0.0.1: {exposed}"


def test_the_socket_reader_sees_an_all_interfaces_listener():
    """The check above can fail: a socket bound to 0.0.0.0 is reported as not loopback."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        mine = listening_sockets({os.getpid()})
        port = s.getsockname()[1]
    assert [address for _, _, address in mine if address.endswith(f":{port}")] == [f"0.0.0.0:{port}"]
    assert not _is_loopback(f"0.0.0.0:{port}") and _is_loopback("127.0.0.1:80")
