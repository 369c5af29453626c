//! CRD and chart-values schema checks for the Kubernetes objects Proton writes. The
//! schemas are files the caller names (proton-addons keeps them in `tests/schemas/`,
//! each copied from upstream with its SOURCES.txt, so the tests are hermetic).

use serde_json::Value;
use std::path::Path;

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

/// The CRD in `file` (a CustomResourceDefinition YAML).
pub fn load_crd(file: &Path) -> Crd {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
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

/// A chart's `values.schema.json` in `file`.
pub fn load_values_schema(file: &Path) -> jsonschema::Validator {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("values schema compiles")
}

pub fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
