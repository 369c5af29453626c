//! The spec is edited by hand: any text parses to a valid spec or is refused with one
//! line, never a panic; a valid spec written back parses to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proton_core::spec::Spec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Spec::from_toml_str(text) {
        Ok(spec) => assert_eq!(Spec::from_toml_str(&spec.to_toml()).unwrap(), spec),
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});
