//! The gateway daemon's admin socket: requests, replies and the status they carry.
