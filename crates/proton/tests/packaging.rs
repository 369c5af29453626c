//! What the Debian package ships beside the binary, checked fast on this machine: the
//! man pages (`proton generate man`) render with man-db, the completions load in bash,
//! the units pass `systemd-analyze verify`, and `proton init` writes a unit that runs
//! this binary, not a path nothing put there. The slow end-to-end check (build the .deb,
//! install it into a debootstrapped Debian root) is `packaging/test-deb`.

use proton_test_support::cli::proton;
use std::path::Path;
use std::process::Command;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn generate(what: &str, dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_proton"))
        .args(["generate", what])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn man_pages_cover_every_command_and_render_with_man_db() {
    let dir = tempfile::tempdir().unwrap();
    generate("man", dir.path());
    let pages = names(dir.path());
    for page in [
        "proton.1",
        "proton-init.1",
        "proton-apply.1",
        "proton-join.1",
        "proton-invite.1",
        "proton-agent.1",
        "proton-gateway-run.1",
        "proton-peer-list.1",
        "proton-lab-up.1",
    ] {
        assert!(pages.contains(&page.to_string()), "{page} in {pages:?}");
    }
    assert!(
        !pages.iter().any(|p| p.contains("generate")),
        "the hidden packaging command has no page: {pages:?}"
    );
    if !have("man") {
        eprintln!("SKIP rendering: man (man-db) is not installed");
        return;
    }
    for page in ["proton.1", "proton-join.1"] {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.path().join(page))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{page}: {err}");
        assert!(err.trim().is_empty(), "groff warnings for {page}: {err}");
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
    }
    let join = std::fs::read_to_string(dir.path().join("proton-join.1")).unwrap();
    assert!(
        join.contains("invitation"),
        "join's --help text is in its page"
    );
}

#[test]
fn completions_load_in_bash_and_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    generate("completions", dir.path());
    assert_eq!(names(dir.path()), ["_proton", "proton", "proton.fish"]);
    let zsh = std::fs::read_to_string(dir.path().join("_proton")).unwrap();
    assert!(zsh.starts_with("#compdef proton"), "{zsh:.80}");
    let fish = std::fs::read_to_string(dir.path().join("proton.fish")).unwrap();
    assert!(fish.contains("complete -c proton"), "{fish:.200}");
    // bash: load it the way bash-completion does, then ask it to complete `proton jo`.
    let script = format!(
        "source {}; COMP_WORDS=(proton jo); COMP_CWORD=1; COMP_LINE='proton jo'; COMP_POINT=9; \
         _proton proton jo proton; printf '%s\\n' \"${{COMPREPLY[@]}}\"; complete -p proton",
        dir.path().join("proton").display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l == "join"),
        "completes `join`: {text}"
    );
    assert!(text.contains("-F _proton proton"), "{text}");
}

/// The package ships crates/proton/debian/*.service (cargo-deb's systemd-units): they
/// must be exactly what `init`, `join` and `apply` write, run from /usr/bin, which is
/// what `proton generate units` writes. After changing a unit:
/// `proton generate units crates/proton/debian`.
#[test]
fn packaged_units_are_the_ones_init_join_and_apply_write() {
    let dir = tempfile::tempdir().unwrap();
    generate("units", dir.path());
    let debian = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian");
    for name in names(dir.path()) {
        let generated = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let shipped = std::fs::read_to_string(debian.join(&name)).unwrap_or_default();
        assert_eq!(
            generated, shipped,
            "{name} differs from crates/proton/debian/{name}: run \
             `proton generate units crates/proton/debian`"
        );
    }
}

#[test]
fn packaged_units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        eprintln!("SKIP: systemd-analyze (systemd) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generate("units", dir.path());
    assert_eq!(
        names(dir.path()),
        [
            "proton-agent.service",
            "proton-firewall.service",
            "proton-gateway.service"
        ]
    );
    // The package's units run /usr/bin/proton, which this machine does not have:
    // verify the same text pointed at the binary under test. (packaging/test-deb
    // verifies the installed units, man pages included, in a Debian root.)
    let bin = env!("CARGO_BIN_EXE_proton");
    let mut paths = Vec::new();
    for name in names(dir.path()) {
        let path = dir.path().join(&name);
        let text = std::fs::read_to_string(&path).unwrap();
        if name != "proton-firewall.service" {
            assert!(
                text.contains("ExecStart=/usr/bin/proton "),
                "{name}: {text}"
            );
        }
        std::fs::write(&path, text.replace("/usr/bin/proton", bin)).unwrap();
        paths.push(path);
    }
    if !Path::new("/usr/sbin/nft").exists() {
        eprintln!("SKIP: nftables is not installed (proton-firewall.service runs /usr/sbin/nft)");
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_writes_a_unit_that_runs_this_binary_unless_the_package_ships_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = proton(BIN, dir.path(), &["init", "--endpoint", "vps.example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit =
        std::fs::read_to_string(dir.path().join("etc/systemd/system/proton-gateway.service"))
            .unwrap();
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_proton")).unwrap();
    assert!(
        unit.contains(&format!("ExecStart={} gateway run\n", bin.display())),
        "{unit}"
    );

    // Installed from the package: its unit in /usr/lib/systemd/system is the one; no
    // copy in /etc that would hide the package's next version.
    let pkg = tempfile::tempdir().unwrap();
    let lib = pkg.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("proton-gateway.service"), "packaged\n").unwrap();
    let out = proton(BIN, pkg.path(), &["init", "--endpoint", "vps.example.com"]);
    assert!(out.status.success());
    assert!(
        !pkg.path()
            .join("etc/systemd/system/proton-gateway.service")
            .exists()
    );
}
