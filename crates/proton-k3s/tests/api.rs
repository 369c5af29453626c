//! `proton_k3s::api` against a stand-in API server that requires mutual TLS: the client
//! must use the kubeconfig's CA and client certificate, read the right path, and turn
//! every failure into one actionable line.

use proton_k3s::Error;
use proton_k3s::api::{ApiClient, KubeconfigSource, client_from_file};
use proton_test_support::kube_api::{self, *};

const PATH: &str = "/api/v1/namespaces/kube-system/secrets/proton-admin-token";

fn client(yaml: &str) -> ApiClient {
    ApiClient::from_kubeconfig(yaml, KubeconfigSource::new("/etc/rancher/k3s/k3s.yaml")).unwrap()
}

fn admin(pki: &Pki, api: &StandIn) -> ApiClient {
    client(&kubeconfig(
        &api.url(),
        &pki.ca_pem,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    ))
}

fn one_line(e: &Error) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "one line: {s}");
    s
}

#[test]
fn reads_the_token_with_the_kubeconfigs_client_certificate() {
    let pki = pki();
    let api = serve(&pki);
    api.set(
        PATH,
        200,
        &secret_json(
            "kube-system",
            "proton-admin-token",
            Some("eyJhbGciOi.sa-token"),
        ),
    );
    let token = admin(&pki, &api)
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap();
    assert_eq!(token.as_str(), "eyJhbGciOi.sa-token");
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, PATH);
    assert_eq!(
        seen[0].client_cert.as_deref(),
        Some(pki.client_cert_der.as_slice()),
        "the server saw the kubeconfig's client certificate"
    );
}

#[test]
fn the_same_kubeconfig_read_from_a_file_works_and_a_missing_one_says_what_to_do() {
    let pki = pki();
    let api = serve(&pki);
    api.set(
        PATH,
        200,
        &secret_json("kube-system", "proton-admin-token", Some("t0k")),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k3s.yaml");
    std::fs::write(
        &path,
        kubeconfig(
            &api.url(),
            &pki.ca_pem,
            &pki.client_cert_pem,
            &pki.client_key_pem,
        ),
    )
    .unwrap();
    let token = client_from_file(&path)
        .unwrap()
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap();
    assert_eq!(token.as_str(), "t0k");

    let missing = dir.path().join("etc/rancher/k3s/k3s.yaml");
    let err = client_from_file(&missing).err().unwrap();
    assert!(matches!(err, Error::KubeconfigMissing(_)));
    let msg = one_line(&err);
    assert!(
        msg.contains("K3s is not installed") && msg.contains("proton apply"),
        "{msg}"
    );
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
}

#[test]
fn a_secret_not_created_or_not_yet_filled_in_is_said_plainly() {
    let pki = pki();
    let api = serve(&pki);
    let c = admin(&pki, &api);
    let err = c
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap_err();
    assert!(matches!(err, Error::SecretMissing { .. }), "{err}");
    assert!(one_line(&err).contains("kube-system/proton-admin-token does not exist yet"));

    // Created by apply, not yet populated by the token controller: no `data`.
    api.set(
        PATH,
        200,
        &secret_json("kube-system", "proton-admin-token", None),
    );
    let err = c
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap_err();
    assert!(matches!(err, Error::TokenNotReady { .. }), "{err}");
    assert!(one_line(&err).contains("has no token yet"));

    // And once it is filled in, the same client reads it.
    api.set(
        PATH,
        200,
        &secret_json("kube-system", "proton-admin-token", Some("later")),
    );
    let token = c
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap();
    assert_eq!(token.as_str(), "later");
}

#[test]
fn an_unreachable_api_names_the_server() {
    let pki = pki();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connection refused
    let url = format!("https://127.0.0.1:{port}");
    let err = client(&kubeconfig(
        &url,
        &pki.ca_pem,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    ))
    .service_account_token("kube-system", "proton-admin-token")
    .unwrap_err();
    assert!(matches!(err, Error::ApiUnreachable { .. }), "{err}");
    let msg = one_line(&err);
    assert!(
        msg.contains(&url) && msg.contains("is K3s running"),
        "{msg}"
    );
}

#[test]
fn the_server_refuses_a_client_without_the_clusters_certificate() {
    let pki = pki();
    let api = serve(&pki);
    api.set(
        PATH,
        200,
        &secret_json("kube-system", "proton-admin-token", Some("s3cret")),
    );
    // A valid certificate from another CA: the handshake fails, nothing is served.
    let (cert, key) = foreign_client();
    let err = client(&kubeconfig(&api.url(), &pki.ca_pem, &cert, &key))
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap_err();
    assert!(matches!(err, Error::ApiUnreachable { .. }), "{err}");
    assert!(
        api.seen.lock().unwrap().is_empty(),
        "no request got through"
    );
    assert!(!api.refused.lock().unwrap().is_empty());
}

#[test]
fn a_server_the_kubeconfigs_ca_did_not_sign_is_not_trusted() {
    let pki = pki();
    let other = kube_api::pki();
    let api = serve(&pki);
    api.set(
        PATH,
        200,
        &secret_json("kube-system", "proton-admin-token", Some("s3cret")),
    );
    // Our credentials are fine for the server, but we trust another CA: we must refuse it
    // before sending anything.
    let err = client(&kubeconfig(
        &api.url(),
        &other.ca_pem,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    ))
    .service_account_token("kube-system", "proton-admin-token")
    .unwrap_err();
    assert!(matches!(err, Error::ApiUnreachable { .. }), "{err}");
    assert!(
        one_line(&err).to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(api.seen.lock().unwrap().is_empty());
}

#[test]
fn a_forbidden_answer_carries_the_apis_message() {
    let pki = pki();
    let api = serve(&pki);
    api.set(
        PATH,
        403,
        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"proton-admin-token\" is forbidden: User \"bob\" cannot get resource","reason":"Forbidden","code":403}"#,
    );
    let err = admin(&pki, &api)
        .service_account_token("kube-system", "proton-admin-token")
        .unwrap_err();
    let msg = one_line(&err);
    assert!(
        msg.contains("403") && msg.contains("cannot get resource"),
        "{msg}"
    );
}

#[test]
fn kubeconfigs_proton_cannot_use_are_refused_up_front() {
    let src = || KubeconfigSource::new("/root/.kube/config");
    let exec = "apiVersion: v1\nclusters:\n- cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}\n  name: c\n\
contexts:\n- context: {cluster: c, user: u}\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user:\n    exec: {command: aws}\n";
    let err = ApiClient::from_kubeconfig(exec, src()).err().unwrap();
    assert!(one_line(&err).contains("exec plugin"), "{err}");
    let plain = exec
        .replace("https://", "http://")
        .replace("exec: {command: aws}", "token: abc");
    let err = ApiClient::from_kubeconfig(&plain, src()).err().unwrap();
    assert!(one_line(&err).contains("not an https:// URL"), "{err}");
    let err = ApiClient::from_kubeconfig("kind: Config\ncontexts: []\n", src())
        .err()
        .unwrap();
    assert!(one_line(&err).contains("/root/.kube/config"), "{err}");
}
