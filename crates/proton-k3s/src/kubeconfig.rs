//! The admin kubeconfig, rewritten for use over the tunnel, and merged into another.
//!
//! Typed on the parts Proton touches; every other field is kept as it was.

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use crate::Error;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Named {
    name: String,
    #[serde(flatten)]
    rest: Mapping,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    #[serde(default)]
    clusters: Vec<Named>,
    #[serde(default)]
    contexts: Vec<Named>,
    #[serde(default)]
    users: Vec<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_context: Option<String>,
    #[serde(flatten)]
    rest: Mapping,
}

fn parse(what: &'static str, yaml: &str) -> Result<KubeConfig, Error> {
    serde_norway::from_str(yaml).map_err(|e| Error::Kubeconfig {
        what,
        reason: e.to_string(),
    })
}

fn inner<'a>(n: &'a mut Named, key: &str) -> Option<&'a mut Mapping> {
    n.rest.get_mut(key).and_then(Value::as_mapping_mut)
}

/// Renames K3s's `default` cluster/context/user to `name` and points the cluster at
/// `server_url` (e.g. `https://10.7.7.1:6443`). Other entries are left alone.
pub fn rewrite(admin_yaml: &str, server_url: &str, name: &str) -> Result<String, Error> {
    let mut cfg = parse("the admin kubeconfig", admin_yaml)?;
    let bad = |reason: &str| Error::Kubeconfig {
        what: "the admin kubeconfig",
        reason: reason.into(),
    };
    let cluster = cfg
        .clusters
        .iter_mut()
        .find(|c| c.name == "default")
        .ok_or_else(|| bad("no cluster named `default` (is this K3s's k3s.yaml?)"))?;
    cluster.name = name.into();
    inner(cluster, "cluster")
        .ok_or_else(|| bad("cluster `default` has no `cluster` map"))?
        .insert("server".into(), server_url.into());
    for u in cfg.users.iter_mut().filter(|u| u.name == "default") {
        u.name = name.into();
    }
    for c in cfg.contexts.iter_mut().filter(|c| c.name == "default") {
        c.name = name.into();
        if let Some(ctx) = inner(c, "context") {
            for key in ["cluster", "user"] {
                if ctx.get(key).and_then(Value::as_str) == Some("default") {
                    ctx.insert(key.into(), name.into());
                }
            }
        }
    }
    if cfg.current_context.as_deref() == Some("default") {
        cfg.current_context = Some(name.into());
    }
    Ok(serde_norway::to_string(&cfg).expect("kubeconfig serializes"))
}

fn upsert(list: &mut Vec<Named>, ours: &[Named]) {
    for o in ours {
        match list.iter_mut().find(|e| e.name == o.name) {
            Some(e) => *e = o.clone(),
            None => list.push(o.clone()),
        }
    }
}

/// Adds (or replaces, by name) `ours`'s clusters, contexts and users in `existing`,
/// keeping every other entry and field. `current-context` is set to ours only when
/// `existing` has none. An empty `existing` yields `ours`.
pub fn merge(existing_yaml: &str, ours_yaml: &str) -> Result<String, Error> {
    if existing_yaml.trim().is_empty() {
        return Ok(
            serde_norway::to_string(&parse("our kubeconfig", ours_yaml)?)
                .expect("kubeconfig serializes"),
        );
    }
    let mut cfg = parse("the existing kubeconfig", existing_yaml)?;
    let ours = parse("our kubeconfig", ours_yaml)?;
    upsert(&mut cfg.clusters, &ours.clusters);
    upsert(&mut cfg.contexts, &ours.contexts);
    upsert(&mut cfg.users, &ours.users);
    if cfg.current_context.as_deref().is_none_or(str::is_empty) {
        cfg.current_context = ours.current_context.clone();
    }
    Ok(serde_norway::to_string(&cfg).expect("kubeconfig serializes"))
}
