"""Task URLs cannot reach link-local or cloud metadata addresses, however they are spelled.

No test sends a packet beyond 127.0.0.0/8: forbidden names are resolved by a
stand-in resolver, and every connection attempt is recorded so a test can
show that the refusal came before any.
"""

from __future__ import annotations

import ipaddress
import socket

import httpcore
import pytest

from ocr_backend.errors import ImageFetchError
from ocr_backend.images import netguard
from ocr_backend.images.fetch import ImageFetcher, new_http_client
from tests.support.fault_servers import FaultServer

LIMIT = 50_000_000
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "169.254.0.1", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe",
     "::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "fd00:ec2::254", "fe80::1", "100.100.100.200",
     "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
@pytest.mark.parametrize("allow_private", [True, False])
def test_link_local_and_metadata_addresses_are_always_refused(address, allow_private):
    assert netguard.refusal(ipaddress.ip_address(address), allow_private=allow_private)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.5", "192.168.1.10", "fd12::1",
                "100.64.0.1", "::ffff:10.0.0.1"],
)  # fmt: skip
def test_private_and_loopback_addresses_are_allowed_unless_switched_off(address):
    assert netguard.refusal(ipaddress.ip_address(address), allow_private=True) is None
    why = netguard.refusal(ipaddress.ip_address(address), allow_private=False)
    assert why == "a private network address (ALLOW_PRIVATE_NETWORKS=false)"


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111"])
def test_public_addresses_are_allowed(address):
    # Only the check: nothing is sent to these addresses.
    assert netguard.refusal(ipaddress.ip_address(address), allow_private=False) is None


class Network:
    """A stand-in resolver for *.test names, and a record of every connection attempt."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
        self.names = names
        self.resolved: list[str] = []
        self.connects: list[tuple[str, int]] = []
        monkeypatch.setattr(netguard.socket, "getaddrinfo", self.getaddrinfo)
        real_connect_tcp = httpcore.AnyIOBackend.connect_tcp
        network = self

        async def connect_tcp(backend, host, port, *args, **kwargs):
            network.connects.append((host, port))
            assert ipaddress.ip_address(host).is_loopback, f"a test tried to reach {host}"
            return await real_connect_tcp(backend, host, port, *args, **kwargs)

        monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.resolved.append(host)
        if host not in self.names:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in self.names[host]
        ]


@pytest.fixture
def fault_server():
    server = FaultServer()
    yield server
    server.close()


async def fetch(url: str, *, allow_private: bool = True) -> bytes:
    async with new_http_client(2, allow_private=allow_private) as client:
        return await ImageFetcher(client, max_bytes=LIMIT).fetch(url)


@pytest.mark.parametrize(
    ("addresses", "shown"),
    [
        (["169.254.169.254"], "169.254.169.254"),
        (["::ffff:169.254.169.254"], "::ffff:a9fe:a9fe"),
        (["fd00:ec2::254"], "fd00:ec2::254"),
        # Every address is checked, not only the first one.
        (["127.0.0.1", "169.254.169.254"], "169.254.169.254"),
    ],
)
async def test_a_name_resolving_to_a_metadata_address_is_refused_before_connecting(
    monkeypatch, addresses, shown
):
    network = Network(monkeypatch, {"metadata.test": addresses})
    with pytest.raises(ImageFetchError) as caught:
        await fetch("http://metadata.test/latest/meta-data/iam")
    assert str(caught.value) == (
        "cannot fetch image http://metadata.test/latest/meta-data/iam: refused to connect: "
        f"metadata.test resolves to {shown}, which is a link-local or cloud metadata address"
    )
    assert caught.value.reason == "address_refused"
    assert network.resolved == ["metadata.test"]
    assert network.connects == []


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/latest/", "https://169.254.169.254/"],
)  # fmt: skip
async def test_a_literal_metadata_address_is_refused_before_connecting(monkeypatch, url):
    network = Network(monkeypatch, {})
    with pytest.raises(ImageFetchError, match="is a link-local or cloud metadata address"):
        await fetch(url)
    assert network.connects == []


async def test_a_redirect_to_a_metadata_address_is_refused_at_that_hop(monkeypatch, fault_server):
    network = Network(monkeypatch, {"metadata.test": ["169.254.169.254"]})
    start = fault_server.url("/redirect?to=http://metadata.test/latest/meta-data/")
    with pytest.raises(ImageFetchError, match="metadata.test resolves to 169.254.169.254"):
        await fetch(start)
    assert fault_server.paths == ["/redirect?to=http://metadata.test/latest/meta-data/"]
    assert network.connects == [("127.0.0.1", fault_server.port)]


async def test_loopback_is_allowed_by_default(monkeypatch, fault_server):
    network = Network(monkeypatch, {"lab.test": ["127.0.0.1"]})
    with pytest.raises(ImageFetchError, match="HTTP 500"):
        await fetch(f"http://lab.test:{fault_server.port}/status/500")
    assert network.connects == [("127.0.0.1", fault_server.port)]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "lan.test"])
async def test_private_networks_can_be_refused(monkeypatch, fault_server, host):
    network = Network(monkeypatch, {"lan.test": ["192.168.1.20"]})
    with pytest.raises(ImageFetchError, match=r"is a private network address \(ALLOW_PRIVATE"):
        await fetch(f"http://{host}:{fault_server.port}/status/200", allow_private=False)
    assert network.connects == [] and fault_server.paths == []


async def test_the_connection_goes_to_the_address_checked_not_to_a_new_lookup(
    monkeypatch, fault_server
):
    # Against DNS rebinding: the name is resolved once, and the connection is made to
    # that checked address (Network refuses a host name at connect time).
    network = Network(monkeypatch, {"lab.test": ["127.0.0.1"]})
    with pytest.raises(ImageFetchError, match="HTTP 500"):
        await fetch(f"http://lab.test:{fault_server.port}/status/500")
    assert network.resolved == ["lab.test"]
    assert network.connects == [("127.0.0.1", fault_server.port)]
