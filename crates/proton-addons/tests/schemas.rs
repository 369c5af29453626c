//! Every object Proton renders validates against the CRD schema of its kind (served
//! version) and every HelmChart's values against its chart's values schema. The negative
//! tests prove the validators do reject what the API server / chart would reject.

mod common;

use common::{defaults, dir, full};
use proton_addons::{
    ALLOWLIST_NAME, AddonsParams, FILE_NAMES, PACKAGED_COMPONENT_FILES, PROD_ISSUER,
    STAGING_ISSUER, TRAEFIK_NAMESPACE, expose, expose_manifest, object_refs, plan_removal,
    render_manifests, to_yaml, unexpose_manifest,
};
use proton_test_support::schema::{Crd, errors, load_crd, load_values_schema, yaml_to_json};
use serde_json::{Value, json};

const CRD_FILES: [&str; 6] = [
    "helm.cattle.io_helmcharts.yaml",
    "traefik.io_middlewares.yaml",
    "traefik.io_ingressroutes.yaml",
    "traefik.io_serverstransports.yaml",
    "cert-manager.io_clusterissuers.yaml",
    "cert-manager.io_certificates.yaml",
];

/// Headlamp exposed at a host (the other dashboard's route shape).
fn headlamp_exposed() -> AddonsParams {
    let mut p = defaults();
    p.dashboard.as_mut().unwrap().host = Some("headlamp.example.org".into());
    p
}

/// A chart's values schema, `tests/schemas/chart-values/CHART.values.schema.json`.
fn values(chart: &str) -> jsonschema::Validator {
    load_values_schema(
        &dir()
            .join("schemas/chart-values")
            .join(format!("{chart}.values.schema.json")),
    )
}

struct Schemas {
    crds: Vec<Crd>,
    traefik: jsonschema::Validator,
    cert_manager: jsonschema::Validator,
    headlamp: jsonschema::Validator,
}

fn schemas() -> Schemas {
    Schemas {
        crds: CRD_FILES
            .iter()
            .map(|f| load_crd(&dir().join("schemas/crds").join(f)))
            .collect(),
        traefik: values("traefik"),
        cert_manager: values("cert-manager"),
        headlamp: values("headlamp"),
    }
}

/// Validate one rendered document; returns the problems (empty = valid).
fn check(s: &Schemas, doc: &Value) -> Vec<String> {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    if api == "v1" || api.starts_with("rbac.authorization.k8s.io/") {
        // Core kinds come from k8s-openapi; prove they read back as that type.
        let ok = match kind {
            "ServiceAccount" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(doc.clone())
                    .is_ok()
            }
            "Secret" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(doc.clone()).is_ok()
            }
            "ClusterRoleBinding" => serde_json::from_value::<
                k8s_openapi::api::rbac::v1::ClusterRoleBinding,
            >(doc.clone())
            .is_ok(),
            _ => false,
        };
        return if ok {
            vec![]
        } else {
            vec![format!("unexpected core object {kind}")]
        };
    }
    let Some(crd) = s.crds.iter().find(|c| c.kind == kind) else {
        return vec![format!("no CRD schema for kind {kind}")];
    };
    let mut errs = Vec::new();
    if crd.api_version != api {
        errs.push(format!(
            "{kind}: apiVersion {api}, served is {}",
            crd.api_version
        ));
    }
    errs.extend(errors(&crd.validator, doc));
    if kind == "HelmChart" {
        let values = doc["spec"]["valuesContent"].as_str().map(yaml_to_json);
        let validator = match doc["spec"]["chart"].as_str() {
            Some("traefik") => Some(&s.traefik),
            Some("cert-manager") => Some(&s.cert_manager),
            Some("headlamp") => Some(&s.headlamp),
            // Kubernetes Dashboard: no values are written.
            _ => None,
        };
        match (values, validator) {
            (Some(v), Some(val)) => {
                errs.extend(errors(val, &v).into_iter().map(|e| format!("values: {e}")))
            }
            (None, None) => {}
            (v, _) => errs.push(format!(
                "values present: {}, schema known: {}",
                v.is_some(),
                validator.is_some()
            )),
        }
    }
    errs
}

fn docs(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde_json::to_value(serde_norway::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn every_rendered_object_validates() {
    let s = schemas();
    let mut kinds = std::collections::BTreeSet::new();
    for params in [defaults(), full(), headlamp_exposed()] {
        for file in render_manifests(&params).unwrap() {
            for doc in docs(&file.yaml) {
                kinds.insert(doc["kind"].as_str().unwrap().to_owned());
                let errs = check(&s, &doc);
                assert!(
                    errs.is_empty(),
                    "{} {}: {errs:#?}",
                    file.name,
                    doc["metadata"]["name"]
                );
            }
        }
    }
    let exposed = expose(
        "blog",
        "blog.example.org",
        "web/blog:8080",
        true,
        PROD_ISSUER,
    )
    .unwrap();
    for doc in docs(&to_yaml(&exposed).unwrap()) {
        kinds.insert(doc["kind"].as_str().unwrap().to_owned());
        assert_eq!(check(&s, &doc), Vec::<String>::new());
    }
    // Not vacuous: every kind Proton writes was checked.
    let expected = [
        "Certificate",
        "ClusterIssuer",
        "ClusterRoleBinding",
        "HelmChart",
        "IngressRoute",
        "Middleware",
        "Secret",
        "ServersTransport",
        "ServiceAccount",
    ];
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), expected);
}

fn rendered(kind: &str, chart: Option<&str>) -> Value {
    render_manifests(&full())
        .unwrap()
        .iter()
        .flat_map(|f| docs(&f.yaml))
        .find(|d| d["kind"] == kind && chart.is_none_or(|c| d["spec"]["chart"] == c))
        .unwrap()
}

#[test]
fn unknown_traefik_value_is_rejected() {
    let s = schemas();
    let mut chart = rendered("HelmChart", Some("traefik"));
    let mut values = yaml_to_json(chart["spec"]["valuesContent"].as_str().unwrap());
    assert!(check(&s, &chart).is_empty());
    // The walkthrough's old chart-v9 key, gone in today's chart.
    values["ports"]["web"]["redirectTo"] = json!("websecure");
    values["ingressClass"]["fallbackApiVersion"] = json!("v1");
    chart["spec"]["valuesContent"] = json!(serde_norway::to_string(&values).unwrap());
    let errs = check(&s, &chart);
    assert!(errs.iter().any(|e| e.contains("redirectTo")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("fallbackApiVersion")),
        "{errs:?}"
    );
}

#[test]
fn wrong_cluster_issuer_is_rejected() {
    let s = schemas();
    let mut issuer = rendered("ClusterIssuer", None);
    assert!(check(&s, &issuer).is_empty());
    issuer["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] = json!(42);
    assert!(!check(&s, &issuer).is_empty());
    // The walkthrough's misspelt-today shape: an unknown field is refused too.
    let mut issuer = rendered("ClusterIssuer", None);
    issuer["spec"]["acme"]["preferedChain"] = json!("ISRG Root X1");
    assert!(!check(&s, &issuer).is_empty());
}

#[test]
fn old_traefik_api_is_rejected() {
    let s = schemas();
    let mut mw = rendered("Middleware", None);
    // A miscapitalised field name is an unknown field (the API server would prune it and
    // the middleware would allow everyone).
    mw["spec"]["ipAllowlist"] = mw["spec"]["ipAllowList"].take();
    mw["spec"].as_object_mut().unwrap().remove("ipAllowList");
    assert!(!check(&s, &mw).is_empty());
    let mut mw = rendered("Middleware", None);
    mw["spec"]["ipAllowList"]["sourceRange"] = json!("10.7.7.0/24");
    assert!(!check(&s, &mw).is_empty(), "a string where a list belongs");
    let mut mw = rendered("Middleware", None);
    mw["apiVersion"] = json!("traefik.containo.us/v1alpha1");
    assert!(!check(&s, &mw).is_empty());
}

#[test]
fn cert_manager_values_install_crds() {
    let chart = rendered("HelmChart", Some("cert-manager"));
    let values = yaml_to_json(chart["spec"]["valuesContent"].as_str().unwrap());
    assert_eq!(values["crds"]["enabled"], json!(true));
}

/// Headlamp's chart at 0.39.0 binds its own ServiceAccount to cluster-admin by default
/// (kubernetes-sigs/headlamp charts/headlamp/values.yaml@headlamp-helm-0.39.0:
/// `clusterRoleBinding: {create: true, clusterRoleName: cluster-admin}`, rendered by
/// templates/clusterrolebinding.yaml only `if .Values.clusterRoleBinding.create`). Proton
/// turns it off, so only the token the user signs in with grants anything.
#[test]
fn headlamp_values_bind_no_chart_account_to_cluster_admin() {
    let s = schemas();
    // The default dashboard is Headlamp.
    let chart = render_manifests(&defaults())
        .unwrap()
        .iter()
        .flat_map(|f| docs(&f.yaml))
        .find(|d| d["kind"] == "HelmChart" && d["spec"]["chart"] == "headlamp")
        .expect("a Headlamp HelmChart");
    let text = chart["spec"]["valuesContent"]
        .as_str()
        .expect("Headlamp's HelmChart sets values");
    let values = yaml_to_json(text);
    assert_eq!(values["clusterRoleBinding"]["create"], json!(false));
    assert_eq!(errors(&s.headlamp, &values), Vec::<String>::new());
    // The schema is not vacuous: a wrong type is refused.
    let bad = json!({"clusterRoleBinding": {"create": "no"}});
    assert!(!errors(&s.headlamp, &bad).is_empty());
}

/// `proton expose`'s file: valid objects, a middleware reference that resolves to the
/// allow-list Proton renders, and a removal that empties the file so K3s prunes both.
#[test]
fn expose_file_validates_references_the_allowlist_and_empties_on_removal() {
    let s = schemas();
    let file = expose_manifest(
        "blog",
        "blog.example.org",
        "web/blog:8080",
        true,
        PROD_ISSUER,
    )
    .unwrap();
    assert_eq!(file.name, "proton-expose-blog.yaml");
    assert!(!PACKAGED_COMPONENT_FILES.contains(&file.name.as_str()));
    assert!(!FILE_NAMES.contains(&file.name.as_str()));
    let objs = docs(&file.yaml);
    assert_eq!(objs.len(), 2);
    for doc in &objs {
        assert_eq!(check(&s, doc), Vec::<String>::new());
        assert_eq!(doc["metadata"]["namespace"], "web");
    }
    let route = objs.iter().find(|d| d["kind"] == "IngressRoute").unwrap();
    let mw = &route["spec"]["routes"][0]["middlewares"][0];
    assert_eq!(mw["name"], ALLOWLIST_NAME);
    assert_eq!(mw["namespace"], TRAEFIK_NAMESPACE);
    // The reference resolves: `apply` renders a Middleware with exactly that identity.
    let allowlists: Vec<Value> = render_manifests(&defaults())
        .unwrap()
        .iter()
        .flat_map(|f| docs(&f.yaml))
        .filter(|d| d["kind"] == "Middleware")
        .collect();
    assert!(
        allowlists
            .iter()
            .any(|d| d["metadata"]["name"] == *mw.get("name").unwrap()
                && d["metadata"]["namespace"] == *mw.get("namespace").unwrap()),
        "{allowlists:#?}"
    );
    let service = &route["spec"]["routes"][0]["services"][0];
    assert_eq!(
        (&service["name"], &service["port"]),
        (&json!("blog"), &json!(8080))
    );

    let public = expose_manifest(
        "blog",
        "blog.example.org",
        "web/blog:8080",
        false,
        STAGING_ISSUER,
    )
    .unwrap();
    let public_route = docs(&public.yaml)
        .into_iter()
        .find(|d| d["kind"] == "IngressRoute");
    assert!(
        public_route.unwrap()["spec"]["routes"][0]
            .get("middlewares")
            .is_none()
    );

    let removed = unexpose_manifest("blog").unwrap();
    assert_eq!(removed.name, file.name, "removal keeps the file");
    assert!(object_refs(&removed).unwrap().is_empty());
    let gone: Vec<String> = plan_removal(&[file], &[removed])
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    assert_eq!(gone, ["Certificate blog", "IngressRoute blog"]);
}
