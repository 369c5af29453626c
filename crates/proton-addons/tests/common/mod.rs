//! Shared test fixtures: parameter sets and schema loading (all from this crate's
//! `tests/schemas/`, copied with their SOURCES.txt, so the tests are hermetic).
#![allow(dead_code)]

use proton_addons::{AddonsParams, DashboardKind, DashboardParams, ExtraPort, Protocol};
use serde_json::Value;
use std::path::PathBuf;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

pub fn defaults() -> AddonsParams {
    AddonsParams::defaults("gateway", "10.7.7.0/24".parse().unwrap(), "ops@example.org")
}

/// Every option set: dashboards exposed, extra TCP and UDP ports, the archived Kubernetes
/// Dashboard (HTTPS backend, so a ServersTransport too).
pub fn full() -> AddonsParams {
    let mut p = defaults();
    p.public_ip = Some("203.0.113.7".parse().unwrap());
    p.vpn_cidr = "10.8.0.0/16".parse().unwrap();
    let i = p.ingress.as_mut().unwrap();
    i.class = "edge".into();
    i.dashboard_host = Some("traefik.example.org".into());
    i.extra_ports = vec![
        ExtraPort {
            name: "rtmp".into(),
            port: 8935,
            exposed_port: 1935,
            protocol: Protocol::Tcp,
        },
        ExtraPort {
            name: "game-udp".into(),
            port: 27015,
            exposed_port: 27015,
            protocol: Protocol::Udp,
        },
    ];
    p.dashboard = Some(DashboardParams {
        kind: DashboardKind::KubernetesDashboard,
        chart_version: DashboardKind::KubernetesDashboard
            .default_chart_version()
            .into(),
        host: Some("k8s.example.org".into()),
    });
    p
}

/// Headlamp exposed at a host (the other dashboard's route shape).
pub fn headlamp_exposed() -> AddonsParams {
    let mut p = defaults();
    p.dashboard.as_mut().unwrap().host = Some("headlamp.example.org".into());
    p
}

pub fn yaml_to_json(text: &str) -> Value {
    serde_norway::from_str(text).expect("valid YAML")
}

/// A compiled CRD schema: the served version's `openAPIV3Schema`, made strict the way the
/// API server is with `kubectl apply --validate=strict`: an object schema with
/// `properties` and no `x-kubernetes-preserve-unknown-fields` rejects unknown fields
/// (otherwise the API server prunes them silently, which for Proton is the same bug).
pub struct Crd {
    pub api_version: String,
    pub kind: String,
    pub validator: jsonschema::Validator,
}

pub fn load_crd(file: &str) -> Crd {
    let text = std::fs::read_to_string(dir().join("schemas/crds").join(file)).unwrap();
    let crd = yaml_to_json(&text);
    let group = crd["spec"]["group"].as_str().unwrap();
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["served"] == Value::Bool(true) && v["storage"] == Value::Bool(true))
        .expect("a served storage version");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    strict(&mut schema);
    let validator = jsonschema::draft4::new(&schema).expect("CRD schema compiles");
    Crd {
        api_version: format!("{group}/{}", version["name"].as_str().unwrap()),
        kind,
        validator,
    }
}

fn strict(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let preserve =
                map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserve
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in map.iter_mut() {
                strict(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

pub fn load_values_schema(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(dir().join("schemas/chart-values").join(file)).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("values schema compiles")
}

pub fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
