//! The worker side of Proton: `join` (redeem an invitation) and `agent` (keep the tunnel up).
