//! Kubeconfig rewrite and merge on a realistic K3s admin kubeconfig.

use proton_k3s::Error;
use proton_k3s::kubeconfig::{merge, rewrite};
use serde_norway::Value;

const K3S: &str = include_str!("fixtures/k3s.yaml");
const EXISTING: &str = include_str!("fixtures/existing-kubeconfig.yaml");
const URL: &str = "https://10.7.7.1:6443";

fn v(yaml: &str) -> Value {
    serde_norway::from_str(yaml).unwrap()
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc[list]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

#[test]
fn rewrite_renames_and_points_at_the_tunnel() {
    let out = v(&rewrite(K3S, URL, "homelab").unwrap());
    let orig = v(K3S);
    let cluster = named(&out, "clusters", "homelab").unwrap();
    assert_eq!(cluster["cluster"]["server"].as_str(), Some(URL));
    // The CA and client credentials are carried over byte for byte.
    assert_eq!(
        cluster["cluster"]["certificate-authority-data"],
        orig["clusters"][0]["cluster"]["certificate-authority-data"]
    );
    let user = named(&out, "users", "homelab").unwrap();
    assert_eq!(user["user"], orig["users"][0]["user"]);
    let ctx = named(&out, "contexts", "homelab").unwrap();
    assert_eq!(ctx["context"]["cluster"].as_str(), Some("homelab"));
    assert_eq!(ctx["context"]["user"].as_str(), Some("homelab"));
    assert_eq!(out["current-context"].as_str(), Some("homelab"));
    // Unknown top-level fields survive.
    assert_eq!(out["kind"].as_str(), Some("Config"));
    assert!(out["preferences"].is_mapping());
    assert!(named(&out, "clusters", "default").is_none());
}

#[test]
fn rewrite_refuses_what_is_not_a_k3s_kubeconfig() {
    assert!(matches!(
        rewrite(EXISTING, URL, "x"),
        Err(Error::Kubeconfig { .. })
    ));
    assert!(matches!(
        rewrite("clusters: 3", URL, "x"),
        Err(Error::Kubeconfig { .. })
    ));
}

#[test]
fn merge_keeps_other_contexts_untouched() {
    let ours = rewrite(K3S, URL, "homelab").unwrap();
    let merged = v(&merge(EXISTING, &ours).unwrap());
    let before = v(EXISTING);
    for (list, name) in [
        ("clusters", "work-eks"),
        ("clusters", "kind-dev"),
        ("contexts", "work"),
        ("contexts", "kind-dev"),
        ("users", "work-user"),
        ("users", "kind-dev"),
    ] {
        assert_eq!(
            named(&merged, list, name),
            named(&before, list, name),
            "{list}/{name}"
        );
    }
    assert!(named(&merged, "contexts", "homelab").is_some());
    assert_eq!(merged["clusters"].as_sequence().unwrap().len(), 3);
    // The user's current context is kept.
    assert_eq!(merged["current-context"].as_str(), Some("work"));
    assert_eq!(merged["preferences"]["colors"].as_bool(), Some(true));
}

#[test]
fn merge_replaces_our_own_entries_and_sets_current_context_only_if_none() {
    let ours = rewrite(K3S, URL, "homelab").unwrap();
    let once = merge(EXISTING, &ours).unwrap();
    let newer = rewrite(K3S, "https://10.7.7.1:7443", "homelab").unwrap();
    let twice = v(&merge(&once, &newer).unwrap());
    assert_eq!(twice["clusters"].as_sequence().unwrap().len(), 3);
    assert_eq!(
        named(&twice, "clusters", "homelab").unwrap()["cluster"]["server"].as_str(),
        Some("https://10.7.7.1:7443")
    );
    let no_current = EXISTING.replace("current-context: work\n", "");
    let merged = v(&merge(&no_current, &ours).unwrap());
    assert_eq!(merged["current-context"].as_str(), Some("homelab"));
    let from_empty = v(&merge("", &ours).unwrap());
    assert_eq!(from_empty, v(&ours));
}
