//! Which data plane to use: kernel WireGuard where the module exists, else the embedded
//! userspace one. [`detect`] says which and why, for `proton doctor`.

use std::path::Path;

/// The data plane asked for: [`proton_core::backend::Backend`], under the name this
/// crate's callers use.
pub use proton_core::backend::{Backend, UnknownBackend};

/// What [`detect`] decided: `kind` is never `Auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub kind: Backend,
    pub reason: String,
}

const MODULE: &str = "/sys/module/wireguard";

/// Resolves `Auto` (an explicit choice is kept as is): the kernel backend when
/// `/sys/module/wireguard` exists, or appears after `modprobe wireguard`, or when a
/// probe link of kind wireguard can be created (a module built into the kernel);
/// otherwise userspace.
pub async fn detect(asked: Backend) -> Detection {
    match asked {
        Backend::Kernel | Backend::Userspace => Detection {
            kind: asked,
            reason: format!("{asked} backend chosen explicitly"),
        },
        Backend::Auto => detect_auto(Path::new(MODULE)).await,
    }
}

async fn detect_auto(module: &Path) -> Detection {
    let kernel = |reason: &str| Detection {
        kind: Backend::Kernel,
        reason: reason.to_string(),
    };
    if module.exists() {
        return kernel("the wireguard kernel module is loaded");
    }
    // modprobe is best effort: absent in containers, refused without CAP_SYS_MODULE.
    let probed = tokio::process::Command::new("modprobe")
        .args(["-q", "wireguard"])
        .status()
        .await
        .is_ok_and(|s| s.success());
    if probed && module.exists() {
        return kernel("the wireguard kernel module was loaded with modprobe");
    }
    // A built-in module has no /sys/module entry on some kernels: try a link.
    let probe = format!("wgprobe{}", std::process::id() % 100_000);
    if crate::link::create_wireguard(&probe).await.is_ok() {
        let _ = crate::link::delete(&probe).await;
        return kernel("the kernel creates links of kind wireguard");
    }
    Detection {
        kind: Backend::Userspace,
        reason: "no wireguard kernel module (not loaded, modprobe failed, no built-in \
                 support): using the embedded userspace implementation on /dev/net/tun"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in [Backend::Auto, Backend::Kernel, Backend::Userspace] {
            assert_eq!(k.to_string().parse::<Backend>().unwrap(), k);
        }
        let e = "wg".parse::<Backend>().unwrap_err().to_string();
        assert!(
            e.contains("`wg`") && e.contains("auto, kernel or userspace"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn explicit_choices_are_kept() {
        assert_eq!(detect(Backend::Userspace).await.kind, Backend::Userspace);
        assert_eq!(detect(Backend::Kernel).await.kind, Backend::Kernel);
    }

    #[tokio::test]
    async fn a_loaded_module_means_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let d = detect_auto(dir.path()).await;
        assert_eq!(d.kind, Backend::Kernel);
        assert!(d.reason.contains("loaded"), "{}", d.reason);
    }

    #[tokio::test]
    async fn auto_resolves_to_what_this_machine_has() {
        let d = detect(Backend::Auto).await;
        assert_ne!(d.kind, Backend::Auto);
        // This machine's kernel has no WireGuard; elsewhere either answer is right.
        if !Path::new(MODULE).exists() && crate::link::create_wireguard("wgprobet").await.is_err() {
            assert_eq!(d.kind, Backend::Userspace, "{}", d.reason);
        }
        let _ = crate::link::delete("wgprobet").await;
    }
}
