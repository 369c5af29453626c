//! A stand-in Kubernetes API server for tests: HTTPS on 127.0.0.1 with rustls, which
//! *requires* a client certificate signed by the cluster CA (as kube-apiserver does for
//! K3s's admin user), and answers GETs from a table of paths. Certificates are made in
//! the test with rcgen; [`kubeconfig`] writes a K3s-shaped `k3s.yaml` for them.
//! Used by proton-k3s's and the CLI's tests.
//! What it copies from upstream (kubernetes/kubernetes at the K3s v1.34.2+k3s1 base,
//! v1.34.2): x509 client-certificate authentication (`staging/src/k8s.io/apiserver/pkg/
//! authentication/request/x509`), object JSON at `/api/v1/namespaces/<ns>/<kind>/<name>`,
//! and a `kind: Status` body with the HTTP code on errors (apimachinery `metav1.Status`).
//! The kubeconfig shape is K3s's `/etc/rancher/k3s/k3s.yaml` (cluster, user and context
//! all named `default`, server `https://127.0.0.1:6443`, inline base64 certificate data).

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cluster CA with a server certificate (for 127.0.0.1) and an admin client
/// certificate, all PEM.
pub struct Pki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    pub client_cert_pem: String,
    pub client_cert_der: Vec<u8>,
    pub client_key_pem: String,
}

fn ca() -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "k3s-client-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    (cert, Issuer::new(params, key))
}

pub fn pki() -> Pki {
    let (ca_cert, issuer) = ca();
    let server_key = KeyPair::generate().unwrap();
    let mut sp =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    sp.distinguished_name.push(DnType::CommonName, "k3s");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp.signed_by(&server_key, &issuer).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(DnType::CommonName, "system:admin");
    cp.distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = cp.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        server_cert_der: server.der().to_vec(),
        server_key_der: server_key.serialize_der(),
        client_cert_pem: client.pem(),
        client_cert_der: client.der().to_vec(),
        client_key_pem: sec1_pem(&client_key.serialize_der()),
    }
}

/// K3s writes its admin key as SEC1 (`EC PRIVATE KEY`), not PKCS#8: take the
/// ECPrivateKey out of rcgen's PKCS#8 (SEQUENCE { version, algorithm, OCTET STRING }).
fn sec1_pem(pkcs8: &[u8]) -> String {
    fn tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, hdr) = match d[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                (
                    d[2..2 + k].iter().fold(0, |a, b| (a << 8) | *b as usize),
                    2 + k,
                )
            }
        };
        (d[0], &d[hdr..hdr + len], &d[hdr + len..])
    }
    let (_, seq, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(seq); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, sec1, _) = tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey is an OCTET STRING");
    let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// Another CA's client certificate and key (PEM): valid, but not the cluster's.
pub fn foreign_client() -> (String, String) {
    let (_, issuer) = ca();
    let key = KeyPair::generate().unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name.push(DnType::CommonName, "intruder");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = cp.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kubeconfig shaped like K3s's `/etc/rancher/k3s/k3s.yaml`.
pub fn kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: default\n\
contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\n\
preferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// What the server saw of one request that passed the TLS handshake.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// The client certificate presented in the handshake (DER).
    pub client_cert: Option<Vec<u8>>,
}

pub struct StandIn {
    pub addr: SocketAddr,
    pub routes: Arc<Mutex<HashMap<String, (u16, String)>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Handshakes the server refused (e.g. no or foreign client certificate).
    pub refused: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    pub fn set(&self, path: &str, status: u16, body: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }
}

/// A Secret as the API returns it; `token` (plain) goes base64-encoded into `data`.
pub fn secret_json(namespace: &str, name: &str, token: Option<&str>) -> String {
    let data = token
        .map(|t| {
            format!(
                r#","data":{{"ca.crt":"{}","namespace":"{}","token":"{}"}}"#,
                b64("ca"),
                b64(namespace),
                b64(t)
            )
        })
        .unwrap_or_default();
    format!(
        r#"{{"kind":"Secret","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{namespace}","annotations":{{"kubernetes.io/service-account.name":"proton-admin"}}}},"type":"kubernetes.io/service-account-token"{data}}}"#
    )
}

pub fn not_found_json(name: &str) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"{name}\" not found","reason":"NotFound","code":404}}"#
    )
}

pub fn serve(pki: &Pki) -> StandIn {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(pki.server_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
            )
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let routes: Arc<Mutex<HashMap<String, (u16, String)>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let (r, s, f) = (routes.clone(), seen.clone(), refused.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = StreamOwned::new(conn, stream);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head = loop {
                match tls.read(&mut chunk) {
                    Ok(0) => break None,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break Some(String::from_utf8_lossy(&buf).into_owned());
                        }
                    }
                    Err(e) => {
                        f.lock().unwrap().push(e.to_string());
                        break None;
                    }
                }
            };
            let Some(head) = head else { continue };
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_owned();
            let client_cert = tls
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            s.lock().unwrap().push(Seen {
                path: path.clone(),
                client_cert,
            });
            let (status, body) = r
                .lock()
                .unwrap()
                .get(&path)
                .cloned()
                .unwrap_or((404, not_found_json(path.rsplit('/').next().unwrap_or(""))));
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    StandIn {
        addr,
        routes,
        seen,
        refused,
    }
}
