//! `--k3s-install-script` (join) and the spec's `k3s.install_script` (apply): where the
//! K3s install script comes from.

use proton_k3s::install::ScriptSource;

/// Where the script comes from: an absolute path (resolved under the root) or a URL.
pub fn script_source(text: &str) -> ScriptSource {
    if text.starts_with('/') {
        ScriptSource::Path(text.into())
    } else {
        ScriptSource::Url(text.to_string())
    }
}
