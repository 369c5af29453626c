//! The link side of an interface, shared by both backends over rtnetlink: create a
//! link of kind `wireguard` (kernel backend only; the userspace one gets its link from
//! the TUN), set its address, MTU and bring it up, delete it.

use crate::WgError;
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::{LinkUnspec, LinkWireguard};

fn err(name: &str, what: &str, e: impl std::fmt::Display) -> WgError {
    WgError::Link {
        name: name.to_string(),
        reason: format!("{what}: {e}"),
    }
}

async fn handle(name: &str) -> Result<rtnetlink::Handle, WgError> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| err(name, "opening a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn index(handle: &rtnetlink::Handle, name: &str) -> Result<Option<u32>, WgError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(err(name, "looking the link up", e)),
    }
}

/// Whether a link of this name exists.
pub(crate) async fn exists(name: &str) -> Result<bool, WgError> {
    let h = handle(name).await?;
    Ok(index(&h, name).await?.is_some())
}

/// `ip link add NAME type wireguard`. Fails when the kernel has no WireGuard module.
pub(crate) async fn create_wireguard(name: &str) -> Result<(), WgError> {
    let h = handle(name).await?;
    h.link()
        .add(LinkWireguard::new(name).build())
        .execute()
        .await
        .map_err(|e| {
            err(
                name,
                "creating a link of kind wireguard (is the module loaded?)",
                e,
            )
        })
}

/// `ip addr add ADDRESS dev NAME; ip link set NAME mtu MTU up`. An address already on
/// the link (a restarted daemon finding its interface) is not an error.
pub(crate) async fn configure(name: &str, address: Ipv4Net, mtu: u16) -> Result<(), WgError> {
    let h = handle(name).await?;
    let idx = index(&h, name)
        .await?
        .ok_or_else(|| err(name, "configuring", "no such interface"))?;
    match h
        .address()
        .add(idx, address.addr().into(), address.prefix_len())
        .execute()
        .await
    {
        Ok(()) => {}
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
        Err(e) => return Err(err(name, &format!("adding address {address}"), e)),
    }
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .mtu(u32::from(mtu))
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| err(name, &format!("setting MTU {mtu} and bringing it up"), e))
}

/// `ip link del NAME`; a link already gone is not an error.
pub(crate) async fn delete(name: &str) -> Result<(), WgError> {
    let h = handle(name).await?;
    let Some(idx) = index(&h, name).await? else {
        return Ok(());
    };
    h.link()
        .del(idx)
        .execute()
        .await
        .map_err(|e| err(name, "deleting the link", e))
}
