//! `proton apply`'s planner, its pending journal and its execution: make the gateway's
//! host match the spec.
//!
//! What it manages: the nftables firewall (always: it also keeps the join API off the
//! public side), and when `k3s.enabled` the K3s server's files, the pinned K3s version
//! (the official install script) and the add-on manifests in K3s's auto-deploy
//! directory. Everything is computed first by [`plan`] (a bad spec changes nothing);
//! `--dry-run` stops there and prints it.
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
//!    (`k3s.skip_download`, no registry for the upgrade image) the installer runs again.
//!
//! Every step command acts on the whole host (systemctl, `sysctl --system`, the host's
//! own nftables table), so it goes through [`Host::host_wide`]: printed, not run, under
//! a root other than `/`. The installer and the `k3s` binary are found under the root,
//! so tests run fixtures there; a downloaded installer is host-wide too.

use proton_addons::{
    FILE_NAMES, ManifestFile, ObjectRef, UPGRADE_FILE_NAMES, UpgradeParams, plan_removal,
    render_manifests, render_upgrade_manifests,
};
use proton_core::host::{Host, HostError, NotRun, Root};
use proton_core::say::Line;
use proton_core::spec::Spec;
use proton_k3s::config::SERVER_DROPIN_PATH;
use proton_k3s::gateway::{
    FIREWALL_PATH, FIREWALL_UNIT, FIREWALL_UNIT_PATH, MANIFESTS_DIR, firewall_files, server_params,
};
use proton_k3s::install::{self, Installer, Role, ScriptSource, missing_host_tools};
use proton_k3s::{Plan, PlannedCommand, PlannedFile};
use proton_proto::join::JOIN_API_PORT;

/// Host commands a previous run decided on but did not finish.
pub const PENDING_PATH: &str = "/var/lib/proton/apply.pending";

/// What can stop `apply`, one line each; [`ApplyError::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The spec cannot be turned into files (bad input: exit code 2).
    #[error("{0}")]
    Spec(String),
    #[error("{tool} is missing: K3s's kube-proxy needs it")]
    MissingTool {
        tool: &'static str,
        fix: &'static str,
    },
    #[error("could not run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("{0}")]
    Install(proton_k3s::Error),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    K3s(#[from] proton_k3s::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ApplyError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ApplyError::MissingTool { fix, .. } => Some(fix),
            ApplyError::Spawn { .. } => {
                Some("install it (nftables, systemd, procps) and re-run `proton apply`")
            }
            ApplyError::Failed { .. } => {
                Some("fix the cause and re-run `proton apply`: it resumes where this run stopped")
            }
            ApplyError::Install(_) => Some("fix the cause and re-run `proton apply`"),
            _ => None,
        }
    }

    /// Whether the input (the spec) is at fault rather than the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ApplyError::Spec(_))
    }
}

/// A host command step, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Sysctl,
    DaemonReload,
    Firewall,
    EnableFirewall,
    RestartK3s,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Sysctl,
        Step::DaemonReload,
        Step::Firewall,
        Step::EnableFirewall,
        Step::RestartK3s,
    ];

    /// The step's line in the pending journal.
    pub fn key(self) -> &'static str {
        match self {
            Step::Sysctl => "sysctl",
            Step::DaemonReload => "daemon-reload",
            Step::Firewall => "firewall",
            Step::EnableFirewall => "enable-firewall",
            Step::RestartK3s => "restart-k3s",
        }
    }

    pub fn command(self, root: &Root) -> PlannedCommand {
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

/// Everything one run would do on the host.
#[derive(Debug)]
pub struct HostPlan {
    pub files: Plan,
    pub steps: Vec<Step>,
    /// K3s add-on objects that K3s will prune because their file no longer holds them.
    pub removals: Vec<ObjectRef>,
    /// The install to run, when the installed K3s is not the pinned version.
    pub install: Option<Installer>,
    pub installed: Option<String>,
    /// K3s is installed at another version than the pinned one and the Plans written
    /// here upgrade it (the server, then each agent): `(installed, pinned)`.
    pub upgrade_by_plans: Option<(String, String)>,
}

/// What [`execute`] reports as it goes, for the caller to print.
#[derive(Debug)]
pub enum Event<'a> {
    /// A host tool the install needs is missing, on a root where that is not fatal.
    Warning(String),
    Wrote(&'a str),
    Prunes(&'a ObjectRef),
    /// A step's command ran (only where host-wide commands run).
    Ran(&'a PlannedCommand),
}

/// What [`install()`] reports as it goes.
#[derive(Debug)]
pub enum InstallEvent<'a> {
    /// The installer is host-wide and the root is not `/`: the line to print instead.
    NotRun(String),
    Starting(&'a str),
    Line(&'a str),
    Installed(&'a str),
}

fn manifest_path(name: &str) -> String {
    format!("{MANIFESTS_DIR}/{name}")
}

/// The steps a previous run recorded and did not finish.
pub fn read_pending(root: &Root) -> Result<Vec<Step>, ApplyError> {
    let text = root.read_optional(PENDING_PATH)?.unwrap_or_default();
    Ok(Step::ALL
        .into_iter()
        .filter(|s| text.lines().any(|l| l.trim() == s.key()))
        .collect())
}

/// Computes everything a run would do; changes nothing.
pub fn plan(host: &Host, spec: &Spec) -> Result<HostPlan, ApplyError> {
    let root = host.root();
    let bad = |e: &dyn std::fmt::Display| ApplyError::Spec(e.to_string());
    let mut files: Vec<PlannedFile> = firewall_files(spec, JOIN_API_PORT).map_err(|e| bad(&e))?;
    let mut removals = Vec::new();
    let mut install = None;
    let mut installed = None;
    let mut upgrade_by_plans = None;
    if spec.k3s.enabled {
        let mut params = server_params(spec).map_err(|e| bad(&e))?;
        if spec.ingress.enabled {
            // ServiceLB only on the gateway (enablelb), in the gateway's pool: a LoadBalancer
            // Service never opens ports on a worker behind NAT.
            params.node_labels = proton_addons::GATEWAY_NODE_LABELS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        files.extend(proton_k3s::server_files(&params).map_err(|e| bad(&e))?);
        let addons = proton_addons::from_spec(spec).map_err(|e| bad(&e))?;
        let mut next = render_manifests(&addons).map_err(|e| bad(&e))?;
        // K3s upgrades through the system-upgrade-controller and its Plans, unless the
        // host is air-gapped (the Plans' jobs pull the rancher/k3s-upgrade image).
        let upgrades = (!spec.k3s.skip_download).then(|| UpgradeParams {
            k3s_version: spec.k3s.version.clone(),
        });
        next.extend(render_upgrade_manifests(upgrades.as_ref()).map_err(|e| bad(&e))?);
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
                ScriptSource::from_spec(&spec.k3s.install_script),
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
    // The host's table: only where host-wide commands run is there a live one to ask.
    let firewall_live = !host.runs_host_wide()
        || host
            .host_wide()
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
    Ok(HostPlan {
        files,
        steps,
        removals,
        install,
        installed,
        upgrade_by_plans,
    })
}

pub fn describe_upgrade((from, to): &(String, String)) -> String {
    format!(
        "K3s {from} -> {to}: the system-upgrade-controller's Plans upgrade the server first, \
         then each agent (`k3s kubectl -n system-upgrade get plans,jobs` shows progress)"
    )
}

pub fn describe_install(i: &Installer, installed: &Option<String>) -> String {
    let src = match &i.source {
        ScriptSource::Url(u) => u.clone(),
        ScriptSource::Path(p) => p.display().to_string(),
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

/// `namespace/name`, or `name` for a cluster-wide object.
pub fn object_name(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{ns}/{}", r.name),
        None => r.name.clone(),
    }
}

impl HostPlan {
    /// The dry run's first lines: what would be created, changed and run, one line each,
    /// before the diffs. Empty when there is nothing to do.
    pub fn summary(&self, root: &Root, cleanups: usize) -> Result<String, ApplyError> {
        use proton_k3s::plan::FileState;
        let (mut create, mut change) = (Vec::new(), Vec::new());
        for f in &self.files.files {
            match self.files.state(root, f)? {
                FileState::Same => {}
                FileState::Missing => create.push(f.path.as_str()),
                _ => change.push(f.path.as_str()),
            }
        }
        let commands: Vec<String> = self
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
        if let Some(i) = &self.install {
            line(
                "install",
                1,
                format!(
                    "K3s {} with the official script (now: {})",
                    i.version,
                    self.installed.as_deref().unwrap_or("not installed")
                ),
            );
        }
        line(
            "prune",
            self.removals.len(),
            format!("{} add-on object(s), by K3s", self.removals.len()),
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

    /// The files' diffs and the commands that would run, as `--dry-run` prints them.
    pub fn diff(&self, root: &Root) -> Result<String, ApplyError> {
        let mut shown = self.files.clone();
        shown.commands = self.steps.iter().map(|s| s.command(root)).collect();
        Ok(shown.dry_run(root)?)
    }

    /// Whether the K3s installer will really run here (a downloaded script is host-wide).
    fn install_runs(&self, host: &Host) -> bool {
        self.install
            .as_ref()
            .is_some_and(|i| host.runs_host_wide() || matches!(i.source, ScriptSource::Path(_)))
    }

    /// Whether this run loaded the host's firewall file (its sets are empty: the daemon
    /// must refill them).
    pub fn loaded_firewall(&self, host: &Host) -> bool {
        host.runs_host_wide() && self.steps.contains(&Step::Firewall)
    }
}

impl HostPlan {
    /// What `apply --dry-run` prints: the summary, the diffs, what K3s prunes, installs
    /// or upgrades, and the removed workers' K8s nodes still to delete (`cleanups`).
    pub fn dry_run_report(
        &self,
        root: &Root,
        cleanups: &[proton_store::NodeCleanup],
    ) -> Result<String, ApplyError> {
        let mut out = self.summary(root, cleanups.len())?;
        let diff = self.diff(root)?;
        out.push_str(&diff);
        for r in &self.removals {
            out.push_str(&format!("K3s prunes: {} {}\n", r.kind, object_name(r)));
        }
        if let Some(i) = &self.install {
            out.push_str(&format!("run: {}\n", describe_install(i, &self.installed)));
        }
        if let Some(u) = &self.upgrade_by_plans {
            out.push_str(&format!("upgrade: {}\n", describe_upgrade(u)));
        }
        if diff.is_empty()
            && self.removals.is_empty()
            && self.install.is_none()
            && cleanups.is_empty()
        {
            out.push_str(NOTHING_TO_CHANGE);
        } else {
            out.push_str("(dry run: nothing was changed)\n");
        }
        for c in cleanups {
            out.push_str(&format!(
                "would delete K8s node `{}` (removed worker, cleanup pending)\n",
                c.name
            ));
        }
        Ok(out)
    }

    /// What `apply` prints last, once the plan ran: the files `written` and the
    /// `cleaned` removed workers' nodes, or that nothing had to change.
    pub fn applied_report(&self, spec: &Spec, written: &[String], cleaned: usize) -> String {
        if written.is_empty() && self.steps.is_empty() && self.install.is_none() && cleaned == 0 {
            return NOTHING_TO_CHANGE.into();
        }
        let mut out = String::new();
        if spec.k3s.enabled && written.iter().any(|f| f == proton_k3s::config::CONFIG_PATH) {
            let mtu = spec.network.mtu;
            out.push_str(&format!(
                "Pod network MTU over {}: {mtu} - 50 (VXLAN) = {}; flannel derives it from flannel-iface.\n",
                spec.network.interface,
                proton_k3s::pod_mtu(mtu)
            ));
        }
        out.push_str(&format!(
            "Applied: {} file(s) written, {} command(s), {cleaned} removed node(s) deleted.\n",
            written.len(),
            self.steps.len() + usize::from(self.install.is_some())
        ));
        out
    }
}

const NOTHING_TO_CHANGE: &str = "Nothing to change: the host matches the spec.\n";

impl Event<'_> {
    /// The line `apply` prints for this event, on its stream.
    pub fn line(&self) -> Line {
        match self {
            Event::Warning(w) => Line::Err(format!("warning: {w}")),
            Event::Wrote(f) => Line::Out(format!("wrote {f}")),
            Event::Prunes(r) => Line::Out(format!("K3s prunes: {} {}", r.kind, object_name(r))),
            Event::Ran(cmd) => Line::Out(format!("ran: {cmd}")),
        }
    }
}

impl InstallEvent<'_> {
    /// The line `apply` prints for this event: the installer's progress on stderr.
    pub fn line(&self) -> Line {
        match self {
            InstallEvent::NotRun(line) => Line::Out(line.clone()),
            InstallEvent::Starting(v) => Line::Err(format!(
                "installing K3s {v} (server; this can take a few minutes) ..."
            )),
            InstallEvent::Line(line) => Line::Err(format!("  | {line}")),
            InstallEvent::Installed(v) => Line::Out(format!("K3s {v} installed and started.")),
        }
    }
}

/// Writes the journal, the files, then runs the steps. Returns the files written. The
/// journal stays until [`clear_journal`], so a run that stops here is finished by the next.
pub fn execute(
    host: &Host,
    p: &HostPlan,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<String>, ApplyError> {
    let root = host.root();
    if p.install_runs(host)
        && let Some(m) = missing_host_tools(root).first()
    {
        let err = ApplyError::MissingTool {
            tool: m.tool,
            fix: m.fix,
        };
        if host.runs_host_wide() {
            return Err(err);
        }
        on(Event::Warning(format!("{err} ({})", m.fix)));
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
        on(Event::Wrote(f));
    }
    for r in &p.removals {
        on(Event::Prunes(r));
    }
    run_steps(host, &p.steps, on)?;
    Ok(written)
}

fn run_steps(host: &Host, steps: &[Step], on: &mut dyn FnMut(Event<'_>)) -> Result<(), ApplyError> {
    for s in steps {
        let cmd = s.command(host.root());
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let out = host
            .host_wide()
            .run(&cmd.program, &args, &[], None)
            .map_err(|e| ApplyError::Spawn {
                command: cmd.to_string(),
                reason: e.to_string(),
            })?;
        if !out.success() {
            return Err(ApplyError::Failed {
                command: cmd.to_string(),
                stderr: out.stderr.trim().to_string(),
            });
        }
        if host.runs_host_wide() {
            on(Event::Ran(&cmd));
        }
    }
    Ok(())
}

/// Every step ran: forgets them.
pub fn clear_journal(root: &Root) -> Result<(), ApplyError> {
    if root.exists(PENDING_PATH) {
        std::fs::remove_file(root.path(PENDING_PATH))?;
    }
    Ok(())
}

/// Runs the planned K3s install, if any.
pub fn install(
    host: &Host,
    p: &HostPlan,
    on: &mut dyn FnMut(InstallEvent<'_>),
) -> Result<(), ApplyError> {
    let Some(i) = &p.install else {
        return Ok(());
    };
    if !p.install_runs(host) {
        on(InstallEvent::NotRun(NotRun::line(&describe_install(
            i,
            &p.installed,
        ))));
        return Ok(());
    }
    on(InstallEvent::Starting(&i.version));
    i.install(&mut |line| on(InstallEvent::Line(line)))
        .map_err(ApplyError::Install)?;
    on(InstallEvent::Installed(&i.version));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::host::{Output, RecordingRunner};

    fn spec() -> Spec {
        let mut s = Spec::new("vps.example.com".parse().unwrap());
        s.k3s.enabled = false;
        s
    }

    #[test]
    fn a_failed_step_stays_in_the_journal_and_the_next_run_resumes_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec: &'static RecordingRunner = Box::leak(Box::new(RecordingRunner::new()));
        rec.answer(
            &["systemctl", "enable"],
            Output {
                status: Some(1),
                stderr: "no systemd\n".into(),
                ..Output::default()
            },
        );
        let host = Host::with_runner(Root::new(dir.path()), rec, true);
        let p = plan(&host, &spec()).unwrap();
        assert_eq!(
            p.steps,
            [Step::DaemonReload, Step::Firewall, Step::EnableFirewall]
        );
        let mut ran = Vec::new();
        let err = execute(&host, &p, &mut |e| {
            if let Event::Ran(c) = e {
                ran.push(c.to_string())
            }
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`systemctl enable proton-firewall.service` failed: no systemd"
        );
        assert!(err.hint().unwrap().contains("resumes"));
        assert_eq!(ran.len(), 2);
        // The files are written now; what did not finish comes from the journal.
        let again = plan(&host, &spec()).unwrap();
        assert!(again.files.changed(host.root()).unwrap().is_empty());
        assert_eq!(again.steps, p.steps);
        clear_journal(host.root()).unwrap();
        assert!(plan(&host, &spec()).unwrap().steps.is_empty());
    }

    #[test]
    fn a_plan_with_nothing_to_do_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::with_runner(Root::new(dir.path()), NotRun, false);
        let p = plan(&host, &spec()).unwrap();
        let dry = p.dry_run_report(host.root(), &[]).unwrap();
        assert!(dry.starts_with("Summary (dry run, nothing is changed):\n"));
        assert!(dry.ends_with("(dry run: nothing was changed)\n"));
        let done = p.applied_report(&spec(), &[], 0);
        assert!(done.starts_with("Applied: 0 file(s) written, 3 command(s), 0 removed"));
        let nothing = HostPlan {
            steps: Vec::new(),
            ..p
        };
        assert_eq!(nothing.applied_report(&spec(), &[], 0), NOTHING_TO_CHANGE);
    }

    #[test]
    fn a_bad_spec_is_bad_input_without_a_hint() {
        let e = ApplyError::Spec("bad".into());
        assert!(e.is_bad_input());
        assert!(e.hint().is_none());
    }
}
