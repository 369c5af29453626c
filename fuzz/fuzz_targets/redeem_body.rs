//! The join API's request body comes from any invitee: it parses or is refused with one
//! short line that quotes none of it, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proton_proto::join::RedeemRequest;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = RedeemRequest::from_body(data) {
        assert!(!e.contains('\n') && e.len() < 200, "{e}");
    }
});
