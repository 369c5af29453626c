//! wg-quick files come from people and other tools: parse or refuse, never panic; a
//! parsed file renders to text that parses back to the same configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proton_core::wgconf::WgQuickConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = WgQuickConfig::parse(text) {
        let again = WgQuickConfig::parse(&cfg.render());
        assert!(again.is_ok(), "rendered config does not parse: {again:?}");
    }
});
