//! Property tests (CI) for the join API's request body, what any invitee can send: it
//! parses or is refused with one short line that quotes none of it (the cargo-fuzz
//! target `fuzz/fuzz_targets/redeem_body.rs` covers the same entry point).

use proptest::prelude::*;
use proton_proto::join::RedeemRequest;

fn refused_briefly(body: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = RedeemRequest::from_body(body) {
        prop_assert!(!e.contains('\n') && e.len() < 120, "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_bytes_parse_or_are_refused_in_one_short_line(
        body in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        refused_briefly(&body)?;
    }

    #[test]
    fn json_shaped_bodies_parse_or_are_refused_without_echoing(
        secret in prop_oneof![".{0,300}".prop_map(|s| serde_json::json!(s)), any::<i64>().prop_map(|n| serde_json::json!(n)), Just(serde_json::json!(null)), Just(serde_json::json!([1, 2]))],
        key in prop_oneof![".{0,300}".prop_map(|s| serde_json::json!(s)), any::<f64>().prop_map(|n| serde_json::json!(n)), Just(serde_json::json!({"a": "b"}))],
        extra in proptest::option::of(".{0,50}"),
    ) {
        let mut body = serde_json::json!({"secret": secret, "public_key": key});
        if let Some(x) = extra {
            body[x] = serde_json::json!("x".repeat(300));
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        refused_briefly(&bytes)?;
        match RedeemRequest::from_body(&bytes) {
            Ok(r) => {
                prop_assert_eq!(Some(r.secret.as_str()), body["secret"].as_str());
                prop_assert_eq!(Some(r.public_key.as_str()), body["public_key"].as_str());
            }
            Err(_) => prop_assert!(!(body["secret"].is_string() && body["public_key"].is_string())),
        }
    }
}

#[test]
fn a_ten_megabyte_value_is_not_echoed() {
    let big = format!(
        "{{\"secret\": {}, \"public_key\": \"k\"}}",
        "7".repeat(10 << 20)
    );
    let e = RedeemRequest::from_body(big.as_bytes()).unwrap_err();
    assert!(e.len() < 120, "{} bytes", e.len());
    let wrong = format!(
        "{{\"secret\": \"s\", \"public_key\": [\"{}\"]}}",
        "A".repeat(10 << 20)
    );
    let e = RedeemRequest::from_body(wrong.as_bytes()).unwrap_err();
    assert!(e.len() < 120 && !e.contains("AAAA"), "{e}");
}
