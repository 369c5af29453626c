//! What `proton apply` derives from the spec for the gateway: one place that turns
//! `proton.toml` into the K3s server's [`ServerParams`], the firewall, and the paths and
//! ports the gateway's other parts agree on.

use proton_core::spec::{EndpointHost, Spec};

use crate::Error;
use crate::config::{PlannedFile, ServerParams, TunnelUnit};
use crate::firewall::{self, FirewallParams};

/// K3s's auto-deploy directory: every manifest here is applied (and pruned) by K3s.
pub const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";
/// The firewall ruleset `proton apply` writes and loads (`nft -f`).
pub const FIREWALL_PATH: &str = "/etc/proton/firewall.nft";
/// Loads [`FIREWALL_PATH`] at boot, before K3s opens its ports.
pub const FIREWALL_UNIT_PATH: &str = "/etc/systemd/system/proton-firewall.service";
pub const FIREWALL_UNIT: &str = "proton-firewall.service";
/// The kube API.
pub const API_PORT: u16 = 6443;
/// The gateway's Prometheus endpoint: tunnel-only like the kube API.
pub const METRICS_PORT: u16 = 9586;
/// How long a worker's bootstrap token lives: long enough for `proton join` to
/// download and start K3s on a slow line, short enough to be useless when leaked later.
pub const BOOTSTRAP_TOKEN_TTL: &str = "30m";

/// `https://<gateway tunnel address>:6443`: workers reach the API through the tunnel.
pub fn server_url(spec: &Spec) -> String {
    format!("https://{}:{API_PORT}", spec.gateway_address())
}

/// The spec's `k3s.extra_args` (`"--flag=value"`, `"--flag value"` or `"--flag"`) as
/// `config.yaml` keys and values; a bare flag is `true`.
pub fn parse_extra_args(args: &[String]) -> Result<Vec<(String, String)>, Error> {
    args.iter()
        .map(|a| {
            let bad = || Error::InvalidName {
                field: "k3s.extra_args",
                value: a.clone(),
            };
            let flag = a.trim().strip_prefix("--").ok_or_else(bad)?;
            let (k, v) = match flag.split_once(['=', ' ']) {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (flag, "true"),
            };
            let key_ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !key_ok {
                return Err(bad());
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The gateway's K3s server, from the spec. Proton's own Traefik replaces K3s's when
/// `ingress.enabled`.
pub fn server_params(spec: &Spec) -> Result<ServerParams, Error> {
    let public_name = match &spec.gateway.endpoint.host {
        EndpointHost::Name(n) => Some(n.clone()),
        EndpointHost::Ip(_) => None,
    };
    Ok(ServerParams {
        node_name: spec.node_name().to_string(),
        tunnel_ip: spec.gateway_address(),
        tunnel_cidr: spec.network.cidr.to_string(),
        public_ip: spec.public_ip(),
        public_name,
        interface: spec.network.interface.clone(),
        wg_mtu: spec.network.mtu,
        disable_traefik: spec.ingress.enabled,
        gogc: spec.k3s.gogc,
        version: spec.k3s.version.clone(),
        tunnel_unit: TunnelUnit::ProtonGateway,
        node_labels: Vec::new(),
        extra_args: parse_extra_args(&spec.k3s.extra_args)?,
    })
}

/// The public surface: WireGuard's port, 80/443; the kube API, kubelet, join API and
/// metrics only through the tunnel.
pub fn firewall_params(spec: &Spec, join_port: u16) -> FirewallParams {
    FirewallParams::gateway(
        &spec.network.interface,
        spec.network.cidr,
        spec.listen_port(),
        join_port,
        METRICS_PORT,
    )
}

/// The unit that loads the firewall at boot (also shipped by the Debian package).
pub fn firewall_unit() -> String {
    format!(
        "# Written by `proton apply`: loads Proton's nftables table (only `inet proton`) at boot,\n\
         # before K3s opens the kube API, so 6443 is never reachable from the public side.\n\
         [Unit]\n\
         Description=Proton firewall (nftables table inet proton)\n\
         DefaultDependencies=no\n\
         Before=network-pre.target k3s.service proton-gateway.service\n\
         Wants=network-pre.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/usr/sbin/nft -f {FIREWALL_PATH}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The ruleset file and the unit that loads it at boot.
pub fn firewall_files(spec: &Spec, join_port: u16) -> Result<Vec<PlannedFile>, Error> {
    Ok(vec![
        PlannedFile {
            path: FIREWALL_PATH.into(),
            contents: firewall::ruleset(&firewall_params(spec, join_port))?,
            mode: 0o644,
            secret: false,
        },
        PlannedFile {
            path: FIREWALL_UNIT_PATH.into(),
            contents: firewall_unit(),
            mode: 0o644,
            secret: false,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_extra: &str) -> Spec {
        Spec::from_toml_str(&format!(
            "[gateway]\nendpoint = \"vps.example.org:51820\"\npublic_ip = \"203.0.113.7\"\n{toml_extra}"
        ))
        .unwrap()
    }

    #[test]
    fn server_params_follow_the_spec() {
        let s = spec(
            "[network]\ncidr = \"10.9.0.0/16\"\ninterface = \"wg7\"\n[ingress]\nenabled = false\n",
        );
        let p = server_params(&s).unwrap();
        assert_eq!(p.tunnel_ip.to_string(), "10.9.0.1");
        assert_eq!(p.interface, "wg7");
        assert_eq!(p.public_name.as_deref(), Some("vps.example.org"));
        assert_eq!(p.public_ip.unwrap().to_string(), "203.0.113.7");
        assert!(
            !p.disable_traefik,
            "K3s keeps its Traefik when Proton's is off"
        );
        assert_eq!(server_url(&s), "https://10.9.0.1:6443");
    }

    #[test]
    fn extra_args_parse_and_merge_into_config() {
        let s = spec(
            "[k3s]\nextra_args = [\"--disable=servicelb\", \"--kube-apiserver-arg=v=2\", \"--kube-apiserver-arg audit-log-maxage=3\", \"--secrets-encryption\", \"--node-label=disk=ssd\"]\n",
        );
        let mut p = server_params(&s).unwrap();
        p.node_labels = vec![("pool".into(), "gw".into())];
        let files = crate::server_files(&p).unwrap();
        let cfg = &files[0].contents;
        assert!(cfg.contains("disable:\n- traefik\n- servicelb\n"), "{cfg}");
        assert!(
            cfg.contains("kube-apiserver-arg:\n- v=2\n- audit-log-maxage=3\n"),
            "{cfg}"
        );
        assert!(cfg.contains("secrets-encryption: 'true'"), "{cfg}");
        // Proton's node labels and the spec's extra ones end up in one list.
        assert!(
            cfg.contains("node-label:\n- pool=gw\n- disk=ssd\n"),
            "{cfg}"
        );
        for bad in ["disable=x", "--", "--a;b=1"] {
            assert!(parse_extra_args(&[bad.to_string()]).is_err(), "{bad}");
        }
        let conflict = spec("[k3s]\nextra_args = [\"--node-ip=1.2.3.4\"]\n");
        assert!(matches!(
            crate::server_files(&server_params(&conflict).unwrap()),
            Err(Error::ExtraArgConflict(k)) if k == "node-ip"
        ));
    }

    #[test]
    fn firewall_files_keep_the_api_on_the_tunnel() {
        let files = firewall_files(&spec(""), 51821).unwrap();
        let rules = &files[0].contents;
        assert!(
            rules.contains("iifname \"wg0\" ip saddr 10.7.7.0/24 accept"),
            "{rules}"
        );
        assert!(rules.contains("udp dport 51820 accept"), "{rules}");
        assert!(
            rules.contains("tcp dport { 6443, 9586, 10250, 51821 } counter drop"),
            "{rules}"
        );
        assert!(
            files[1]
                .contents
                .contains("ExecStart=/usr/sbin/nft -f /etc/proton/firewall.nft")
        );
    }
}
