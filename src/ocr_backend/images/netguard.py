"""Where task image URLs may lead: checked on the resolved address, before connecting.

A task's image URL is chosen by whoever can write tasks. Without a check, a
URL such as http://169.254.169.254/latest/meta-data/ would make the backend
fetch the cloud provider's credentials and hand them back as an "image"
error. Checking the URL's host name is not enough: a name can resolve to
any address, and a redirect can point anywhere. So the check sits where the
connection is made: `GuardedBackend` resolves the host itself, checks every
address it got, and connects only to an address it checked. httpx calls it
for every new connection, each redirect hop included.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import anyio
import anyio.to_thread
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services that are not in 169.254.0.0/16.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("168.63.129.16"),  # Azure's wire server (and its DNS, health)
    }
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the IPv4 address sits where the network's own prefix
# length puts it, which cannot be known from here, so the whole range is refused.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class AddressRefused(httpcore.ConnectError):
    """The host resolves to an address this service must not connect to."""


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside ::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::a.b.c.d or 6to4's
    2002:AABB:CCDD::, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        packed = address.packed
        if address in NAT64 or (packed[:12] == bytes(12) and int(address) > 1):
            return ipaddress.IPv4Address(packed[12:])
    return address


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address is refused, or None when it may be connected to."""
    if address in LOCAL_NAT64:
        return "a local-use NAT64 address (64:ff9b:1::/48), whose IPv4 target cannot be checked"
    address = embedded_ipv4(address)
    if address in METADATA_ADDRESSES or address.is_link_local:
        return "a link-local or cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return "not a host address"
    if not allow_private and not address.is_global:
        # Loopback, RFC 1918, unique-local, carrier-grade NAT and reserved ranges.
        return "a private network address (ALLOW_PRIVATE_NETWORKS=false)"
    return None


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> list[str]:
    """All of `addresses` if every one may be connected to; else AddressRefused.

    Every address is checked, not only the first: the system may try the next
    one when the first fails to connect.
    """
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        why = refusal(address, allow_private=allow_private)
        if why is not None:
            shown = host if host == str(address) else f"{host} resolves to {address}, which"
            raise AddressRefused(f"refused to connect: {shown} is {why}")
        checked.append(text)
    return checked


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in the order the system prefers them."""
    try:
        found = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with every address checked before it is connected to."""

    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with anyio.fail_after(timeout):
            addresses = await resolve(host, port)
        allowed = check_addresses(host, addresses, allow_private=self.allow_private)
        error: Exception | None = None
        for address in allowed:
            try:
                # TLS still verifies and sends SNI for the URL's host name: httpcore
                # takes those from the request, not from this address.
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(self, *args, **kwargs) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not fetched from")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a GuardedBackend.

    httpx has no public way to pass a network backend, so the connection pool
    it built is replaced by one with the same limits and ours.
    """

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )
