//! `proton init`: the arguments become a validated spec; `proton_ops::init` writes the
//! gateway (all of it or nothing); this prints what was made and what comes next.

use crate::cli::InitArgs;
use crate::output::{bad_input, with_hint};
use crate::paths::proton_bin;
use proton_core::host::Root;
use proton_core::spec::Spec;

pub fn run(root: &Root, args: &InitArgs) -> anyhow::Result<()> {
    let spec = spec_from_args(args)?;
    let created = proton_ops::init::init(root, &spec, &proton_bin(), args.force)
        .map_err(|e| with_hint(&e, e.hint(), false))?;
    print!("{created}");
    Ok(())
}

fn spec_from_args(args: &InitArgs) -> anyhow::Result<Spec> {
    let endpoint = args
        .endpoint
        .parse()
        .map_err(|e| bad_input(format!("--endpoint `{}`: {e}", args.endpoint), None))?;
    let mut spec = Spec::new(endpoint);
    spec.gateway.name = args.name.clone();
    spec.k3s.node_name = None;
    spec.network.cidr = args
        .cidr
        .parse()
        .map_err(|e| bad_input(format!("--cidr: {e}"), None))?;
    spec.tls.acme_email = args.acme_email.clone();
    spec.validate()
        .map_err(|e| bad_input(e.to_string(), None))?;
    Ok(spec)
}
