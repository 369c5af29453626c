//! The daemon's side of Proton's nftables table (`inet proton`, made by
//! [`proton_k3s::firewall`], the one generator `proton apply` uses too).
//!
//! The table admits tunnel addresses by role through three sets; an address in none of
//! them (an invitee's throw-away key) reaches only the join API. The daemon keeps the
//! sets equal to the active peers on the device, sending only the difference, and
//! watches the table: when it is gone (`nft flush ruleset`, a restart of Debian's
//! nftables service) or was loaded again (the boot file, with empty sets), the whole
//! table is restored, sets filled, in one transaction. When the table cannot be loaded
//! the fence is not in place, and the daemon keeps every invitee's key off the device
//! (fails closed).

use proton_core::host::SystemRunner;
use proton_k3s::firewall::{self, FirewallParams, Members};
use std::sync::Mutex;

/// What the daemon last loaded: the table's handle and the sets' contents.
#[derive(Debug)]
struct Loaded {
    handle: u64,
    members: Members,
}

/// Where the table's rules come from when it must be loaded whole: the spec as it is
/// now (so a restore writes what `proton apply` would).
pub type Params = Box<dyn Fn() -> FirewallParams + Send + Sync>;

pub struct Firewall {
    params: Params,
    loaded: Mutex<Option<Loaded>>,
}

/// Why the table could not be loaded: the fence is not in place.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("{0}")]
    Rules(#[source] proton_k3s::Error),
    #[error("{0}")]
    Load(#[source] proton_k3s::Error),
    #[error("the table is not listed after loading it")]
    NotListed,
}

impl FenceError {
    /// What fixes it, when something does.
    pub fn hint(&self) -> Option<&str> {
        match self {
            FenceError::Rules(_) => Some("check network.interface and the ports in the spec"),
            FenceError::Load(_) | FenceError::NotListed => Some(
                "check that the kernel has nftables with ct, fib and nat (`nft list ruleset` works); `proton doctor` checks the table",
            ),
        }
    }
}

/// What [`Firewall::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The table was in place; only the sets changed (if at all).
    Kept,
    /// The table had been loaded again (its sets emptied): the sets were refilled.
    Refilled,
    /// The table was missing (or had lost its fence) and was restored whole.
    Restored,
}

impl Firewall {
    pub fn new(params: Params) -> Self {
        Firewall {
            params,
            loaded: Mutex::new(None),
        }
    }

    /// Whether the live table is the one this daemon filled.
    pub fn intact(&self) -> bool {
        let loaded = self.loaded.lock().expect("firewall state");
        let live = firewall::table_handle(&SystemRunner, None);
        matches!((&*loaded, live), (Some(l), Some(h)) if l.handle == h)
    }

    /// Makes the live table admit exactly `members`, restoring the whole table when it
    /// is not the one this daemon filled. An error means the fence is not in place.
    pub fn ensure(&self, members: &Members) -> Result<Ensured, FenceError> {
        let mut loaded = self.loaded.lock().expect("firewall state");
        let live = firewall::table_handle(&SystemRunner, None);
        if let (Some(l), Some(h)) = (loaded.as_mut(), live)
            && l.handle == h
        {
            let script = firewall::members_update(&l.members, members);
            if script.is_empty() {
                return Ok(Ensured::Kept);
            }
            if firewall::apply(&SystemRunner, None, &script).is_ok() {
                l.members = members.clone();
                return Ok(Ensured::Kept);
            }
            // The table changed under us between the two commands: load it whole.
        }
        *loaded = None;
        if let Some(h) = live
            && firewall::apply(&SystemRunner, None, &firewall::members_fill(members)).is_ok()
            && firewall::table_handle(&SystemRunner, None) == Some(h)
        {
            // Someone loaded the table again (`proton apply`, the boot unit): keep their
            // rules, refill the sets.
            *loaded = Some(Loaded {
                handle: h,
                members: members.clone(),
            });
            return Ok(Ensured::Refilled);
        }
        let script =
            firewall::ruleset_with(&(self.params)(), members).map_err(FenceError::Rules)?;
        firewall::apply(&SystemRunner, None, &script).map_err(FenceError::Load)?;
        let handle = firewall::table_handle(&SystemRunner, None).ok_or(FenceError::NotListed)?;
        *loaded = Some(Loaded {
            handle,
            members: members.clone(),
        });
        Ok(Ensured::Restored)
    }
}
