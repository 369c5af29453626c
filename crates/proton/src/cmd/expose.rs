//! `proton expose NAME`: one auto-deploy file per exposed app (IngressRoute +
//! Certificate, + the VPN allow-list), and its removal by emptying the file.

use crate::cli::ExposeArgs;
use crate::output::{bad_input, failure};
use proton_addons::{
    MANIFESTS_DIR, ManifestFile, expose_file_name, expose_manifest, object_refs, unexpose_manifest,
};
use proton_core::host::{Root, SECRET_MODE};
use proton_core::spec::Spec;

pub fn run(root: &Root, args: &ExposeArgs) -> anyhow::Result<()> {
    // Every input is checked before anything is read or written.
    let file_name = expose_file_name(&args.name).map_err(|e| bad_input(e.to_string(), None))?;
    let path = format!("{MANIFESTS_DIR}/{file_name}");
    if args.remove {
        return remove(root, args, &path);
    }
    let (Some(host), Some(service)) = (&args.host, &args.service) else {
        return Err(bad_input("--host and --service are required", None));
    };
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let file = expose_manifest(
        &args.name,
        host,
        service,
        args.vpn_only,
        &spec.tls.default_issuer,
    )
    .map_err(|e| bad_input(e.to_string(), None))?;
    if !(spec.ingress.enabled && spec.tls.enabled) {
        return Err(failure(
            "`proton expose` needs ingress and tls enabled in the spec (Traefik routes it, cert-manager issues its certificate)",
            "set ingress.enabled = true and tls.enabled = true in /etc/proton/proton.toml, then `proton apply`",
        ));
    }
    if args.dry_run {
        print!("{}", file.yaml);
        return Ok(());
    }
    if spec.tls.acme_email.is_none() {
        eprintln!(
            "note: tls.acme_email is not set, so there is no Let's Encrypt issuer yet: the certificate stays pending until you set it and run `proton apply`."
        );
    }
    write(root, &path, &file)?;
    let who = if args.vpn_only {
        "VPN clients only"
    } else {
        "everyone"
    };
    eprintln!(
        "Exposed https://{host} -> {service} for {who}: wrote {}. K3s applies it within seconds; the certificate follows once {host} resolves to the gateway.",
        root.path(&path).display()
    );
    Ok(())
}

fn remove(root: &Root, args: &ExposeArgs, path: &str) -> anyhow::Result<()> {
    let Some(current) = root.read_optional(path)? else {
        return Err(bad_input(
            format!(
                "nothing is exposed as `{}` ({} does not exist)",
                args.name,
                root.path(path).display()
            ),
            None,
        ));
    };
    let empty = unexpose_manifest(&args.name)?;
    if args.dry_run {
        print!("{}", empty.yaml);
        return Ok(());
    }
    let previous = ManifestFile {
        name: empty.name.clone(),
        yaml: current,
    };
    // An unreadable old file still gets emptied: that is what removes its objects.
    let gone = object_refs(&previous).unwrap_or_default();
    write(root, path, &empty)?;
    if gone.is_empty() {
        eprintln!("`{}` was not exposed; {path} stays empty.", args.name);
    } else {
        let list: Vec<String> = gone.iter().map(ToString::to_string).collect();
        eprintln!(
            "Removing {} (K3s prunes them from the emptied {}).",
            list.join(", "),
            root.path(path).display()
        );
    }
    Ok(())
}

fn write(root: &Root, path: &str, file: &ManifestFile) -> anyhow::Result<()> {
    root.create_dir_all(MANIFESTS_DIR, 0o700)?;
    // 0600 like K3s's own manifests: only root and K3s read this directory.
    root.write(path, file.yaml.as_bytes(), SECRET_MODE)?;
    Ok(())
}
