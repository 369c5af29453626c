//! What most gateway commands start from (`proton_ops::gateway`), with its errors as
//! the user sees them; and where removed workers' deleted K8s nodes are reported.

use crate::output::with_hint;
use proton_core::host::Root;
use proton_k3s::tokens::Forgotten;
use proton_ops::gateway::{Gateway, GatewayError};

/// The spec, the gateway key and the DB, or the one line saying which is missing.
pub fn load_gateway(root: &Root) -> anyhow::Result<Gateway> {
    Gateway::load(root).map_err(user_error)
}

pub fn user_error(e: GatewayError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

/// Prints each K8s node deleted on stdout, a token left behind on stderr.
pub fn print_deleted() -> impl FnMut(&str, &Forgotten) {
    |name, done| {
        println!("{}", proton_ops::node_cleanup::deleted_line(name, done));
        if let Some(w) = proton_ops::node_cleanup::token_warning(done) {
            eprintln!("{w}");
        }
    }
}
