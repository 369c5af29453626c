//! `proton apply`: make the gateway's host match the spec.
//!
//! What it manages: the nftables firewall (always: it also keeps the join API off the
//! public side), and when `k3s.enabled` the K3s server's files, the pinned K3s version
//! (the official install script) and the add-on manifests in K3s's auto-deploy
//! directory. Everything is computed first (a bad spec changes nothing); `--dry-run`
//! stops there and prints it.
//!
//! Order, chosen so that a failure at any point is finished by the next run:
//! 1. the host commands this run needs are recorded in [`PENDING_PATH`] *before* any
//!    file is written, and cleared only once they all ran — otherwise a run that wrote
//!    the firewall file but died before `nft -f` would leave the next run seeing
//!    "nothing changed" and never load it;
//! 2. the files are written, each atomically (old or new, never half);
//! 3. sysctl, daemon-reload, the firewall (before K3s opens 6443), then K3s: the
//!    installer when K3s is not installed yet (it starts K3s itself), else a restart only
//!    when Proton's own K3s files changed. A new `k3s.version` on an installed K3s is
//!    K3s's own upgrade mechanism's to do: the system-upgrade-controller add-on and its
//!    two Plans (server, then agents) carry the version; on an air-gapped host
//!    (`k3s.skip_download`, no registry for the upgrade image) the installer runs again;
//! 4. removed workers whose K8s node `peer remove` could not delete (K3s was down) are
//!    retried last, once K3s is installed and configured.
//!
//! Host commands that ignore `--root` (systemctl, sysctl, nft) run only when the root
//! is `/`; under another root they are printed as "not run". The installer and the
//! `k3s` binary are found under the root, so tests run fixtures there.

use crate::cli::ApplyArgs;
use crate::cmd::node_cleanup;
use crate::output::{bad_input, failure};
use proton_addons::{
    FILE_NAMES, ManifestFile, ObjectRef, UPGRADE_FILE_NAMES, UpgradeParams, plan_removal,
    render_manifests, render_upgrade_manifests,
};
use proton_core::host::{NotRun, Root};
use proton_core::spec::Spec;
use proton_gateway::api::JOIN_API_PORT;
use proton_k3s::config::SERVER_DROPIN_PATH;
use proton_k3s::gateway::{
    FIREWALL_PATH, FIREWALL_UNIT, FIREWALL_UNIT_PATH, MANIFESTS_DIR, firewall_files, server_params,
};
use proton_k3s::install::{self, Installer, Role, missing_host_tools};
use proton_k3s::{Plan, PlannedCommand, PlannedFile, Runner, SystemRunner};

/// Host commands a previous run decided on but did not finish.
pub const PENDING_PATH: &str = "/var/lib/proton/apply.pending";

/// A host command step, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Sysctl,
    DaemonReload,
    Firewall,
    EnableFirewall,
    RestartK3s,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::Sysctl,
        Step::DaemonReload,
        Step::Firewall,
        Step::EnableFirewall,
        Step::RestartK3s,
    ];

    fn key(self) -> &'static str {
        match self {
            Step::Sysctl => "sysctl",
            Step::DaemonReload => "daemon-reload",
            Step::Firewall => "firewall",
            Step::EnableFirewall => "enable-firewall",
            Step::RestartK3s => "restart-k3s",
        }
    }

    fn command(self, root: &Root) -> PlannedCommand {
        match self {
            Step::Sysctl => PlannedCommand::new("sysctl", &["--system"]),
            Step::DaemonReload => PlannedCommand::new("systemctl", &["daemon-reload"]),
            Step::Firewall => {
                let path = root.path(FIREWALL_PATH).display().to_string();
                PlannedCommand::new("nft", &["-f", &path])
            }
            Step::EnableFirewall => PlannedCommand::new("systemctl", &["enable", FIREWALL_UNIT]),
            Step::RestartK3s => PlannedCommand::new("systemctl", &["restart", "k3s"]),
        }
    }
}

/// Everything one run would do.
struct ApplyPlan {
    files: Plan,
    steps: Vec<Step>,
    /// K3s add-on objects that K3s will prune because their file no longer holds them.
    removals: Vec<ObjectRef>,
    /// The install to run, when the installed K3s is not the pinned version.
    install: Option<Installer>,
    installed: Option<String>,
    /// K3s is installed at another version than the pinned one and the Plans written
    /// here upgrade it (the server, then each agent): `(installed, pinned)`.
    upgrade_by_plans: Option<(String, String)>,
}

fn manifest_path(name: &str) -> String {
    format!("{MANIFESTS_DIR}/{name}")
}

fn read_pending(root: &Root) -> anyhow::Result<Vec<Step>> {
    let text = root.read_optional(PENDING_PATH)?.unwrap_or_default();
    Ok(Step::ALL
        .into_iter()
        .filter(|s| text.lines().any(|l| l.trim() == s.key()))
        .collect())
}

fn plan(root: &Root, spec: &Spec) -> anyhow::Result<ApplyPlan> {
    let bad = |e: String| bad_input(e, None);
    let mut files: Vec<PlannedFile> =
        firewall_files(spec, JOIN_API_PORT).map_err(|e| bad(e.to_string()))?;
    let mut removals = Vec::new();
    let mut install = None;
    let mut installed = None;
    let mut upgrade_by_plans = None;
    if spec.k3s.enabled {
        let mut params = server_params(spec).map_err(|e| bad(e.to_string()))?;
        if spec.ingress.enabled {
            // ServiceLB only on the gateway (enablelb), in the gateway's pool: a LoadBalancer
            // Service never opens ports on a worker behind NAT.
            params.node_labels = proton_addons::GATEWAY_NODE_LABELS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        files.extend(proton_k3s::server_files(&params).map_err(|e| bad(e.to_string()))?);
        let addons = proton_addons::from_spec(spec).map_err(|e| bad(e.to_string()))?;
        let mut next = render_manifests(&addons).map_err(|e| bad(e.to_string()))?;
        // K3s upgrades through the system-upgrade-controller and its Plans, unless the
        // host is air-gapped (the Plans' jobs pull the rancher/k3s-upgrade image).
        let upgrades = (!spec.k3s.skip_download).then(|| UpgradeParams {
            k3s_version: spec.k3s.version.clone(),
        });
        next.extend(render_upgrade_manifests(upgrades.as_ref()).map_err(|e| bad(e.to_string()))?);
        let mut previous = Vec::new();
        for name in FILE_NAMES.into_iter().chain(UPGRADE_FILE_NAMES) {
            if let Some(yaml) = root.read_optional(manifest_path(name))? {
                previous.push(ManifestFile {
                    name: name.to_string(),
                    yaml,
                });
            }
        }
        // A hand-edited file that no longer parses: overwritten, nothing to report.
        removals = plan_removal(&previous, &next).unwrap_or_default();
        files.extend(next.into_iter().map(|m| PlannedFile {
            path: manifest_path(&m.name),
            contents: m.yaml,
            // K3s keeps its own auto-deploy files root-only; so does Proton.
            mode: 0o600,
            secret: false,
        }));
        installed = install::installed_version(root, install::DEFAULT_K3S_BIN);
        if let (Some(now), Some(_)) = (&installed, &upgrades)
            && *now != spec.k3s.version
        {
            // Installed already: the server Plan upgrades this node, then the agent Plan
            // each worker, never the other way round. The installer is for a first install.
            upgrade_by_plans = Some((now.clone(), spec.k3s.version.clone()));
        } else if installed.as_deref() != Some(spec.k3s.version.as_str()) {
            let mut i = Installer::new(
                root.clone(),
                crate::cmd::join_k3s::script_source(&spec.k3s.install_script),
                spec.k3s.version.clone(),
                Role::Server,
            );
            i.skip_download = spec.k3s.skip_download;
            install = Some(i);
        }
    }
    let files = Plan {
        files,
        commands: vec![],
    };
    let changed = files.changed(root)?;
    let is = |p: &str| changed.iter().any(|c| c == p);
    let mut steps = read_pending(root)?;
    let mut add = |s: Step| {
        if !steps.contains(&s) {
            steps.push(s);
        }
    };
    if is(proton_k3s::config::SYSCTL_PATH) {
        add(Step::Sysctl);
    }
    if is(SERVER_DROPIN_PATH) || is(FIREWALL_UNIT_PATH) {
        add(Step::DaemonReload);
    }
    let firewall_live = !root.is_system()
        || SystemRunner
            .run("nft", &["list", "table", "inet", "proton"], &[], None)
            .is_ok_and(|o| o.success());
    if is(FIREWALL_PATH) || !firewall_live {
        add(Step::Firewall);
    }
    if is(FIREWALL_UNIT_PATH) {
        add(Step::EnableFirewall);
    }
    let k3s_changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    if spec.k3s.enabled && install.is_none() && proton_k3s::needs_restart(&k3s_changed) {
        add(Step::RestartK3s);
    }
    if install.is_some() {
        // The install script (re)starts K3s itself.
        steps.retain(|s| *s != Step::RestartK3s);
    }
    steps.sort();
    Ok(ApplyPlan {
        files,
        steps,
        removals,
        install,
        installed,
        upgrade_by_plans,
    })
}

fn describe_upgrade((from, to): &(String, String)) -> String {
    format!(
        "K3s {from} -> {to}: the system-upgrade-controller's Plans upgrade the server first, \
         then each agent (`k3s kubectl -n system-upgrade get plans,jobs` shows progress)"
    )
}

fn describe_install(i: &Installer, installed: &Option<String>) -> String {
    let src = match &i.source {
        install::ScriptSource::Url(u) => u.clone(),
        install::ScriptSource::Path(p) => p.display().to_string(),
    };
    let now = installed.as_deref().unwrap_or("not installed");
    let air = if i.skip_download {
        ", INSTALL_K3S_SKIP_DOWNLOAD=true"
    } else {
        ""
    };
    format!(
        "K3s install script {src} (INSTALL_K3S_VERSION={}, INSTALL_K3S_EXEC=server{air}; now: {now})",
        i.version
    )
}

/// The dry run's first lines: what would be created, changed and run, one line each,
/// before the diffs. Empty when there is nothing to do.
fn summary(root: &Root, p: &ApplyPlan, cleanups: usize) -> anyhow::Result<String> {
    use proton_k3s::plan::FileState;
    let (mut create, mut change) = (Vec::new(), Vec::new());
    for f in &p.files.files {
        match p.files.state(root, f)? {
            FileState::Same => {}
            FileState::Missing => create.push(f.path.as_str()),
            _ => change.push(f.path.as_str()),
        }
    }
    let commands: Vec<String> = p
        .steps
        .iter()
        .map(|s| s.command(root).to_string())
        .collect();
    let mut out = String::new();
    let mut line = |what: &str, n: usize, list: String| {
        if n > 0 {
            out.push_str(&format!("  {what:<7} {list}\n"));
        }
    };
    line(
        "create",
        create.len(),
        format!("{} file(s): {}", create.len(), create.join(", ")),
    );
    line(
        "change",
        change.len(),
        format!("{} file(s): {}", change.len(), change.join(", ")),
    );
    line(
        "run",
        commands.len(),
        format!("{} command(s): {}", commands.len(), commands.join("; ")),
    );
    if let Some(i) = &p.install {
        line(
            "install",
            1,
            format!(
                "K3s {} with the official script (now: {})",
                i.version,
                p.installed.as_deref().unwrap_or("not installed")
            ),
        );
    }
    line(
        "prune",
        p.removals.len(),
        format!("{} add-on object(s), by K3s", p.removals.len()),
    );
    line(
        "delete",
        cleanups,
        format!("{cleanups} removed worker(s)' K8s node"),
    );
    if out.is_empty() {
        return Ok(out);
    }
    Ok(format!(
        "Summary (dry run, nothing is changed):\n{out}\nDetails:\n"
    ))
}

fn dry_run(root: &Root, p: &ApplyPlan) -> anyhow::Result<()> {
    let cleanups = pending_node_cleanups(root)?.len();
    print!("{}", summary(root, p, cleanups)?);
    let mut shown = p.files.clone();
    shown.commands = p.steps.iter().map(|s| s.command(root)).collect();
    let text = shown.dry_run(root)?;
    print!("{text}");
    for r in &p.removals {
        println!("K3s prunes: {} {}", r.kind, object_name(r));
    }
    if let Some(i) = &p.install {
        println!("run: {}", describe_install(i, &p.installed));
    }
    if let Some(u) = &p.upgrade_by_plans {
        println!("upgrade: {}", describe_upgrade(u));
    }
    if text.is_empty() && p.removals.is_empty() && p.install.is_none() && cleanups == 0 {
        println!("Nothing to change: the host matches the spec.");
    } else {
        println!("(dry run: nothing was changed)");
    }
    Ok(())
}

fn object_name(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{ns}/{}", r.name),
        None => r.name.clone(),
    }
}

fn run_steps(root: &Root, steps: &[Step]) -> anyhow::Result<()> {
    let system = SystemRunner;
    let runner: &dyn Runner = if root.is_system() { &system } else { &NotRun };
    for s in steps {
        let cmd = s.command(root);
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let out = runner.run(&cmd.program, &args, &[], None).map_err(|e| {
            failure(
                format!("could not run `{cmd}`: {e}"),
                "install it (nftables, systemd, procps) and re-run `proton apply`",
            )
        })?;
        if !out.success() {
            return Err(failure(
                format!("`{cmd}` failed: {}", out.stderr.trim()),
                "fix the cause and re-run `proton apply`: it resumes where this run stopped",
            ));
        }
        if root.is_system() {
            println!("ran: {cmd}");
        }
    }
    Ok(())
}

pub fn run(root: &Root, args: &ApplyArgs) -> anyhow::Result<()> {
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let p = plan(root, &spec)?;
    if args.dry_run {
        dry_run(root, &p)?;
        for c in pending_node_cleanups(root)? {
            println!(
                "would delete K8s node `{}` (removed worker, cleanup pending)",
                c.name
            );
        }
        return Ok(());
    }
    let will_install = p
        .install
        .as_ref()
        .is_some_and(|i| root.is_system() || matches!(i.source, install::ScriptSource::Path(_)));
    if will_install {
        let missing = missing_host_tools(root);
        if let Some(m) = missing.first() {
            let msg = format!("{} is missing: K3s's kube-proxy needs it", m.tool);
            if root.is_system() {
                return Err(failure(msg, m.fix));
            }
            eprintln!("warning: {msg} ({})", m.fix);
        }
    }
    if !p.steps.is_empty() {
        let keys: Vec<&str> = p.steps.iter().map(|s| s.key()).collect();
        root.write(
            PENDING_PATH,
            format!("{}\n", keys.join("\n")).as_bytes(),
            0o600,
        )?;
    }
    let written = p.files.write_files(root)?;
    for f in &written {
        println!("wrote {f}");
    }
    for r in &p.removals {
        println!("K3s prunes: {} {}", r.kind, object_name(r));
    }
    run_steps(root, &p.steps)?;
    if root.is_system() && p.steps.contains(&Step::Firewall) {
        // The file's sets are empty (only the join API answers on the tunnel): the
        // running daemon refills them now rather than at its next check.
        crate::cmd::gateway::notify_daemon(root);
    }
    if root.exists(PENDING_PATH) {
        std::fs::remove_file(root.path(PENDING_PATH))?;
    }
    if let Some(i) = &p.install {
        run_installer(root, i, &p.installed)?;
    }
    let cleaned = finish_node_cleanups(root)?;
    if let Some(u) = &p.upgrade_by_plans {
        println!("upgrade: {}", describe_upgrade(u));
    }
    crate::cmd::gateway::reload_daemon(root);
    if written.is_empty() && p.steps.is_empty() && p.install.is_none() && cleaned == 0 {
        println!("Nothing to change: the host matches the spec.");
        return Ok(());
    }
    if spec.k3s.enabled && written.iter().any(|f| f == proton_k3s::config::CONFIG_PATH) {
        let mtu = spec.network.mtu;
        println!(
            "Pod network MTU over {}: {mtu} - 50 (VXLAN) = {}; flannel derives it from flannel-iface.",
            spec.network.interface,
            proton_k3s::pod_mtu(mtu)
        );
    }
    println!(
        "Applied: {} file(s) written, {} command(s), {cleaned} removed node(s) deleted.",
        written.len(),
        p.steps.len() + usize::from(p.install.is_some())
    );
    Ok(())
}

/// Removed workers whose K8s node is not deleted yet (none without a state DB).
fn pending_node_cleanups(root: &Root) -> anyhow::Result<Vec<proton_store::NodeCleanup>> {
    if !root.exists(proton_store::DB_PATH) {
        return Ok(Vec::new());
    }
    Ok(crate::context::GatewayContext::load(root)?
        .store
        .node_cleanups()?)
}

/// Retries the K8s cleanups `peer remove` could not finish (K3s is up to date by now).
/// Returns how many nodes were deleted; a failure is the run's error, the rest of the
/// run having been applied.
fn finish_node_cleanups(root: &Root) -> anyhow::Result<usize> {
    let pending = pending_node_cleanups(root)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut ctx = crate::context::GatewayContext::load(root)?;
    if proton_gateway::k3s::server_version(root, &ctx.spec).is_none() {
        // K3s disabled or not installed: nothing here can delete them, and failing every
        // run for it would block the rest; they stay listed by `peer list`.
        eprintln!(
            "warning: {} removed worker(s) still have a K8s node to delete, but K3s is not installed here; they stay pending",
            pending.len()
        );
        return Ok(0);
    }
    let out = node_cleanup::run_pending(&mut ctx, None, false)?;
    if let Some((name, e)) = &out.failed {
        return Err(failure(
            format!(
                "the host is applied, but deleting the K8s node of removed worker `{name}` failed{}: {e}",
                node_cleanup::left_note(&out)
            ),
            "it stays pending (see `proton peer list`): re-run `proton apply` once K3s answers",
        ));
    }
    Ok(out.done.len())
}

fn run_installer(root: &Root, i: &Installer, installed: &Option<String>) -> anyhow::Result<()> {
    if matches!(i.source, install::ScriptSource::Url(_)) && !root.is_system() {
        println!("{}", NotRun::line(&describe_install(i, installed)));
        return Ok(());
    }
    eprintln!(
        "installing K3s {} (server; this can take a few minutes) ...",
        i.version
    );
    i.install(&mut |line| eprintln!("  | {line}"))
        .map_err(|e| failure(e.to_string(), "fix the cause and re-run `proton apply`"))?;
    println!("K3s {} installed and started.", i.version);
    Ok(())
}
