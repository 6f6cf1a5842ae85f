"""Free ports that Ray's own processes will not take, and ports already taken."""

from __future__ import annotations

import socket

from hqray.ports import free_port, port_in_use


def test_a_free_port_is_outside_the_ranges_ray_takes_and_can_be_bound():
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    ports = {free_port() for _ in range(20)}
    # Ray's workers take 10002-19999; its other processes bind port 0, i.e. the ephemeral range.
    assert all(19999 < port < low for port in ports), ports
    assert len(ports) > 1  # drawn, not one fixed port every caller would share
    for port in ports:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_listening_port_is_in_use_and_a_closed_one_is_not():
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)
