//! Manifest files for K3s's auto-deploy directory, and what changing them removes.

use crate::AddonsError;
use crate::objects::{Object, ObjectRef};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The files Proton owns in `/var/lib/rancher/k3s/server/manifests/`, in apply order.
/// Never drop a name from this list: K3s keeps the objects of a deleted file forever, so a
/// file must stay (empty) for its objects to be pruned.
pub const FILE_NAMES: [&str; 6] = [
    "proton-traefik.yaml",
    "proton-traefik-routes.yaml",
    "proton-cert-manager.yaml",
    "proton-cert-issuers.yaml",
    "proton-dashboard.yaml",
    "proton-dashboard-routes.yaml",
];

/// K3s's packaged components' files. K3s rewrites these at start, and for a component in
/// `--disable` it deletes any file whose base name matches *and the objects in it*, so
/// Proton must never write one of these names (its files' base names all start `proton-`).
pub const PACKAGED_COMPONENT_FILES: [&str; 7] = [
    "traefik.yaml",
    "coredns.yaml",
    "local-storage.yaml",
    "metrics-server.yaml",
    "ccm.yaml",
    "rolebindings.yaml",
    "runtimes.yaml",
];

const HEADER: &str = "# Written by `proton apply`; edits are overwritten.\n";

/// One file for the auto-deploy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// A file name (RFC 1123, `proton-` prefix), not a path.
    pub name: String,
    pub yaml: String,
}

/// Objects as one multi-document YAML file. No objects: the header only. K3s's deploy
/// controller (`pkg/deploy/controller.go`) treats comment-only documents as empty, and
/// applies the (empty) set with the GVKs recorded on the file's `Addon` object, so it
/// prunes everything the file held before; for a HelmChart that is a `helm uninstall`.
pub fn to_yaml(objects: &[Object]) -> Result<String, AddonsError> {
    to_yaml_with_header(HEADER, objects)
}

/// [`to_yaml`] with another leading comment (which command wrote the file).
pub(crate) fn to_yaml_with_header(header: &str, objects: &[Object]) -> Result<String, AddonsError> {
    let mut out = String::from(header);
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(o).map_err(AddonsError::Yaml)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: String,
    kind: String,
    metadata: HeadMeta,
}

#[derive(Deserialize)]
struct HeadMeta {
    name: String,
    namespace: Option<String>,
}

/// The identities of the objects in a manifest file's YAML, in document order.
pub fn object_refs(file: &ManifestFile) -> Result<Vec<ObjectRef>, AddonsError> {
    let mut refs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&file.yaml) {
        let value = serde_norway::Value::deserialize(doc).map_err(|source| AddonsError::Parse {
            file: file.name.clone(),
            source,
        })?;
        if value.is_null() {
            continue; // an empty document (the header alone)
        }
        let head: Head = serde_norway::from_value(value).map_err(|source| AddonsError::Parse {
            file: file.name.clone(),
            source,
        })?;
        refs.push(ObjectRef {
            api_version: head.api_version,
            kind: head.kind,
            namespace: head.metadata.namespace,
            name: head.metadata.name,
        });
    }
    Ok(refs)
}

/// What replacing `previous` (the files now on disk) by `next` removes: the objects in a
/// previous file that its successor no longer has, plus everything in a previous file
/// that `next` does not write at all (K3s would keep those; delete them through the API).
/// The order is the reverse of creation (last file first, last object first): routes go
/// before charts, the token Secret before its ServiceAccount.
pub fn plan_removal(
    previous: &[ManifestFile],
    next: &[ManifestFile],
) -> Result<Vec<ObjectRef>, AddonsError> {
    let mut keep = BTreeSet::new();
    for f in next {
        keep.extend(object_refs(f)?);
    }
    let mut gone = Vec::new();
    for f in previous.iter().rev() {
        for r in object_refs(f)?.into_iter().rev() {
            if !keep.contains(&r) && !gone.contains(&r) {
                gone.push(r);
            }
        }
    }
    Ok(gone)
}
