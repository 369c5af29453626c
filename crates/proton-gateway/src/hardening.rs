//! Keeping key material out of places it should not reach.

/// Marks this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): a crash writes no
/// core dump holding the gateway's private key or a client's fresh one, and other
/// processes of the same user cannot ptrace it or read its `/proc/<pid>/mem`.
pub fn no_core_dumps() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("could not mark the process non-dumpable: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_is_marked_non_dumpable() {
        // The test process itself: the flag is per process, and harmless here.
        assert!(
            nix::sys::prctl::get_dumpable().unwrap(),
            "dumpable at start"
        );
        super::no_core_dumps();
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
