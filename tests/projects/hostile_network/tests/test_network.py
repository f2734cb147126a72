"""Tries to reach the network, the host and the Docker daemon, and to act as root.

Each test passes only when the attempt FAILS: a build that succeeds with every test passed is
positive proof that the sandbox held (a failing test could fail for any reason).
"""

import errno
import os
import socket

import pytest


def _report(what, exc):
    print(f"contained: {what}: {type(exc).__name__}: {exc}", flush=True)


def test_cannot_reach_the_internet():
    with pytest.raises(OSError) as caught:
        socket.create_connection(("1.1.1.1", 53), timeout=3)
    _report("tcp 1.1.1.1:53", caught.value)


def test_cannot_send_udp_to_a_resolver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as caught:
        sock.sendto(b"\x00", ("1.1.1.1", 53))
    sock.close()
    _report("udp 1.1.1.1:53", caught.value)


def test_cannot_resolve_names():
    with pytest.raises(OSError) as caught:
        socket.getaddrinfo("pypi.org", 443)
    _report("dns pypi.org", caught.value)


def test_cannot_reach_the_docker_host():
    # The default bridge gateway, where a daemon listening on TCP would answer.
    with pytest.raises(OSError) as caught:
        socket.create_connection(("172.17.0.1", 2375), timeout=3)
    _report("tcp 172.17.0.1:2375", caught.value)


@pytest.mark.parametrize("path", ["/var/run/docker.sock", "/run/docker.sock"])
def test_cannot_reach_the_docker_socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError) as caught:
        sock.connect(path)
    sock.close()
    _report(path, caught.value)


def test_only_loopback_exists():
    assert sorted(os.listdir("/sys/class/net")) == ["lo"]


def test_is_not_root_and_has_no_capabilities():
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    assert os.getuid() != 0
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"


def test_root_file_system_is_read_only():
    for path in ("/usr/local/lib/evil", "/etc/evil", "/evil"):
        with pytest.raises(OSError) as caught:
            open(path, "w").close()
        assert caught.value.errno in (errno.EROFS, errno.EACCES)
