//! `proton expose NAME`: one auto-deploy file per exposed app (IngressRoute +
//! Certificate, + the VPN allow-list), rendered by `proton_addons`, written to K3s's
//! manifests directory; and its removal by emptying the file, so K3s prunes its objects.

use proton_addons::{
    AddonsError, MANIFESTS_DIR, ManifestFile, expose_file_name, expose_manifest, object_refs,
    unexpose_manifest,
};
use proton_core::host::{HostError, Root, SECRET_MODE};
use proton_core::spec::{Spec, SpecError};
use std::path::PathBuf;

/// Why nothing was exposed or removed.
#[derive(Debug, thiserror::Error)]
pub enum ExposeError {
    /// A name, host or service that cannot be exposed.
    #[error("{0}")]
    Invalid(AddonsError),
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error(
        "`proton expose` needs ingress and tls enabled in the spec (Traefik routes it, cert-manager issues its certificate)"
    )]
    NeedsIngressAndTls,
    #[error("nothing is exposed as `{name}` ({} does not exist)", path.display())]
    NotExposed { name: String, path: PathBuf },
    #[error(transparent)]
    Render(AddonsError),
    #[error(transparent)]
    Host(#[from] HostError),
}

impl ExposeError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            ExposeError::NeedsIngressAndTls => Some(
                "set ingress.enabled = true and tls.enabled = true in /etc/proton/proton.toml, then `proton apply`",
            ),
            _ => None,
        }
    }

    /// The arguments or the spec are at fault: exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ExposeError::Invalid(_) | ExposeError::Spec(_) | ExposeError::NotExposed { .. }
        )
    }
}

/// An app's exposure file, its name checked.
#[derive(Debug)]
pub struct Exposure {
    name: String,
    /// Its host path.
    path: String,
}

/// What [`Exposure::expose`] did.
#[derive(Debug)]
pub enum Exposed {
    /// `--dry-run`: the file it would write.
    DryRun(String),
    Written {
        host: String,
        service: String,
        vpn_only: bool,
        /// The file, under the root.
        path: PathBuf,
        /// `tls.acme_email` is not set: the certificate waits for an issuer.
        no_issuer: bool,
    },
}

/// What [`Exposure::remove`] did.
#[derive(Debug)]
pub enum Removed {
    /// `--dry-run`: the emptied file it would write.
    DryRun(String),
    /// The file held no objects: it stays empty.
    WasNotExposed { name: String, path: String },
    /// The file is emptied: K3s prunes these objects.
    Removing { objects: Vec<String>, path: PathBuf },
}

impl Exposure {
    /// Checks the name before anything is read or written.
    pub fn new(name: &str) -> Result<Exposure, ExposeError> {
        let file_name = expose_file_name(name).map_err(ExposeError::Invalid)?;
        Ok(Exposure {
            name: name.to_owned(),
            path: format!("{MANIFESTS_DIR}/{file_name}"),
        })
    }

    /// Routes `https://host` to `service` (`namespace/name:port`), for VPN clients only
    /// with `vpn_only`; with `dry_run` only renders the file.
    pub fn expose(
        &self,
        root: &Root,
        host: &str,
        service: &str,
        vpn_only: bool,
        dry_run: bool,
    ) -> Result<Exposed, ExposeError> {
        let spec = Spec::load(root)?;
        let file = expose_manifest(
            &self.name,
            host,
            service,
            vpn_only,
            &spec.tls.default_issuer,
        )
        .map_err(ExposeError::Invalid)?;
        if !(spec.ingress.enabled && spec.tls.enabled) {
            return Err(ExposeError::NeedsIngressAndTls);
        }
        if dry_run {
            return Ok(Exposed::DryRun(file.yaml));
        }
        self.write(root, &file)?;
        Ok(Exposed::Written {
            host: host.to_owned(),
            service: service.to_owned(),
            vpn_only,
            path: root.path(&self.path),
            no_issuer: spec.tls.acme_email.is_none(),
        })
    }

    /// Empties the file, so K3s prunes what it held; with `dry_run` only renders it.
    pub fn remove(&self, root: &Root, dry_run: bool) -> Result<Removed, ExposeError> {
        let Some(current) = root.read_optional(&self.path)? else {
            return Err(ExposeError::NotExposed {
                name: self.name.clone(),
                path: root.path(&self.path),
            });
        };
        let empty = unexpose_manifest(&self.name).map_err(ExposeError::Render)?;
        if dry_run {
            return Ok(Removed::DryRun(empty.yaml));
        }
        let previous = ManifestFile {
            name: empty.name.clone(),
            yaml: current,
        };
        // An unreadable old file still gets emptied: that is what removes its objects.
        let gone = object_refs(&previous).unwrap_or_default();
        self.write(root, &empty)?;
        if gone.is_empty() {
            return Ok(Removed::WasNotExposed {
                name: self.name.clone(),
                path: self.path.clone(),
            });
        }
        Ok(Removed::Removing {
            objects: gone.iter().map(ToString::to_string).collect(),
            path: root.path(&self.path),
        })
    }

    fn write(&self, root: &Root, file: &ManifestFile) -> Result<(), HostError> {
        root.create_dir_all(MANIFESTS_DIR, 0o700)?;
        // 0600 like K3s's own manifests: only root and K3s read this directory.
        root.write(&self.path, file.yaml.as_bytes(), SECRET_MODE)
    }
}

impl std::fmt::Display for Exposed {
    /// The file (dry run, for stdout), or what was exposed (for stderr).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exposed::DryRun(yaml) => f.write_str(yaml),
            Exposed::Written {
                host,
                service,
                vpn_only,
                path,
                no_issuer,
            } => {
                if *no_issuer {
                    writeln!(
                        f,
                        "note: tls.acme_email is not set, so there is no Let's Encrypt issuer yet: the certificate stays pending until you set it and run `proton apply`."
                    )?;
                }
                let who = if *vpn_only {
                    "VPN clients only"
                } else {
                    "everyone"
                };
                writeln!(
                    f,
                    "Exposed https://{host} -> {service} for {who}: wrote {}. K3s applies it within seconds; the certificate follows once {host} resolves to the gateway.",
                    path.display()
                )
            }
        }
    }
}

impl std::fmt::Display for Removed {
    /// The emptied file (dry run, for stdout), or what K3s prunes (for stderr).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removed::DryRun(yaml) => f.write_str(yaml),
            Removed::WasNotExposed { name, path } => {
                writeln!(f, "`{name}` was not exposed; {path} stays empty.")
            }
            Removed::Removing { objects, path } => writeln!(
                f,
                "Removing {} (K3s prunes them from the emptied {}).",
                objects.join(", "),
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::host::PUBLIC_MODE;
    use proton_core::spec::SPEC_PATH;

    #[test]
    fn an_app_is_exposed_then_removed_and_each_step_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(Exposure::new("Not A Name").unwrap_err().is_bad_input());
        let web = Exposure::new("web").unwrap();
        assert!(matches!(
            web.remove(&root, false),
            Err(ExposeError::NotExposed { .. })
        ));
        let mut spec = Spec::new("vps.example.com".parse().unwrap());
        spec.ingress.enabled = true;
        spec.tls.enabled = true;
        spec.tls.acme_email = None;
        root.write(SPEC_PATH, spec.to_toml().as_bytes(), PUBLIC_MODE)
            .unwrap();
        let done = web
            .expose(&root, "app.example.com", "default/web:8080", true, false)
            .unwrap();
        let text = done.to_string();
        assert!(
            text.starts_with("note: tls.acme_email is not set"),
            "{text}"
        );
        assert!(text.contains(
            "Exposed https://app.example.com -> default/web:8080 for VPN clients only: wrote "
        ));
        let gone = web.remove(&root, false).unwrap().to_string();
        assert!(gone.starts_with("Removing "), "{gone}");
        assert!(gone.contains("(K3s prunes them from the emptied "));
        let again = web.remove(&root, false).unwrap().to_string();
        assert!(again.ends_with("stays empty.\n"), "{again}");
    }
}
