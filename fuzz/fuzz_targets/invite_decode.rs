//! An invitation is pasted by a person: any text must decode or be refused with one
//! line, never panic; whatever decodes re-encodes to the same invitation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proton_core::invite::Invitation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Invitation::decode(text) {
        Ok(inv) => assert_eq!(Invitation::decode(&inv.encode()).unwrap(), inv),
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
