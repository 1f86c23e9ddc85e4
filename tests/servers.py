"""The servers the tests start (Triton, Ray Serve): ports to give them, and waiting until they answer.

A port that bind(0) reports free comes from the kernel's ephemeral range, where every outgoing connection and
every bind(0) of this and other processes (a starting Ray cluster makes dozens) takes its port: it can be taken
again before the server, which starts seconds later, binds it. These ports come from below that range and above
Ray's worker ports (10002-19999), where nothing is handed out by the kernel, and are checked free on all
addresses (Triton listens on 0.0.0.0)."""

from __future__ import annotations

import random
import socket
import time
import urllib.request
from pathlib import Path

LOW = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; macOS and Windows hand out from 49152


def free_ports(n: int) -> list[int]:
    high = max(_ephemeral_low() - 1, LOW + 1000)
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randint(LOW, high)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        ports.append(port)
    return ports


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy


def http_ok(url: str) -> bool:
    try:
        with _LOCAL.open(url, timeout=5) as r:
            return r.status == 200
    except OSError:  # not listening yet (URLError), or not ready (HTTPError)
        return False


def wait_until_ok(url: str, proc=None, seconds: float = 120, log=lambda: "") -> None:
    """Wait until GET url answers 200: readiness from the server itself, not from its log (a server's log lines
    can interleave mid-line with other writers of the same pipe). Fails at once if proc exits."""
    deadline = time.time() + seconds
    while not http_ok(url):
        assert proc is None or proc.poll() is None, f"the server exited:\n{log()}"
        assert time.time() < deadline, f"{url} did not answer in {seconds} s:\n{log()}"
        time.sleep(0.25)
