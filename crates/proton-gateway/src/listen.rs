//! Binding the join API to the tunnel and nothing else.
//!
//! Two locks: the socket is bound to the gateway's tunnel address (so it never answers
//! on the public address), and to the WireGuard interface with `SO_BINDTODEVICE` (so a
//! packet that arrives on another interface cannot claim a tunnel address — the lesson
//! from innernet's server).

use std::net::{SocketAddr, SocketAddrV4};

/// Binds a TCP listener to `addr`, restricted to the interface `device`.
pub fn bind_tunnel_only(
    addr: SocketAddrV4,
    device: &str,
) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(device.as_bytes()))?;
    socket.bind(&SocketAddr::V4(addr).into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}
