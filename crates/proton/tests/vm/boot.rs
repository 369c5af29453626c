//! The VM side of the kernel tests: find Debian's kernel, busybox and qemu on this
//! machine, pack an initramfs from this machine's own files (busybox, the kernel's
//! WireGuard/nftables/TUN/veth modules with their dependencies, `proton`, this test
//! binary, `ip`, `wg`, `nft` and every shared library they load), boot it under qemu
//! with TCG, and read the scenario's PASS/FAIL lines back from the serial console.
//!
//! Why an initramfs and not a disk image: it needs no root filesystem tools, no
//! partitioning, and is rebuilt from whatever was just compiled in a second or two.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Modules the scenario needs: kernel WireGuard, nf_tables and the expressions Proton's
/// table uses (the fence and reach rules: `ct state`, `fib`; full-tunnel NAT: a nat
/// chain with `masquerade`; a real kernel loads them on demand, this VM has no
/// modprobe), TUN (the userspace backend: joins and the mixed scenario's worker), veth.
const MODULES: &[&str] = &[
    "wireguard",
    "nf_tables",
    "nft_ct",
    "nft_fib_inet",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "tun",
    "veth",
];

/// Host tools copied in with their libraries (busybox provides the rest).
const TOOLS: &[&str] = &["ip", "wg", "nft"];

/// What the VM is built from. `find` says why it cannot run when something is missing.
pub struct Kit {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub kver: String,
    pub busybox: PathBuf,
    tools: Vec<PathBuf>,
}

fn which(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !p.is_empty()).then(|| PathBuf::from(p))
}

impl Kit {
    pub fn find() -> Result<Kit, String> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !root {
            return Err("not root (the kernel image and modules are read as root)".into());
        }
        let qemu = which("qemu-system-x86_64").ok_or("no qemu-system-x86_64 (qemu-system-x86)")?;
        // The installed Debian kernel, not the running one (`uname -r` is the host's).
        let kver = std::fs::read_dir("/lib/modules")
            .map_err(|e| format!("/lib/modules: {e}"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|v| {
                Path::new(&format!("/boot/vmlinuz-{v}")).exists()
                    && Path::new(&format!("/lib/modules/{v}/kernel/drivers/net/wireguard")).exists()
            })
            .max()
            .ok_or(
                "no kernel with a WireGuard module in /boot and /lib/modules (linux-image-amd64)",
            )?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no busybox (busybox-static)")?;
        for tool in ["modprobe", "cpio", "ldd", "strip"] {
            which(tool).ok_or(format!("no {tool} (kmod, cpio, libc-bin, binutils)"))?;
        }
        let tools = TOOLS
            .iter()
            .map(|t| which(t).ok_or(format!("no {t} (iproute2, wireguard-tools, nftables)")))
            .collect::<Result<_, _>>()?;
        Ok(Kit {
            qemu,
            kernel: PathBuf::from(format!("/boot/vmlinuz-{kver}")),
            kver,
            busybox,
            tools,
        })
    }

    /// `insmod` lines in load order, as `modprobe --show-depends` gives them against
    /// the installed kernel (empty for a module built in).
    fn module_files(&self) -> Result<Vec<PathBuf>, String> {
        let mut files: Vec<PathBuf> = Vec::new();
        for m in MODULES {
            let out = Command::new("modprobe")
                .args(["-S", &self.kver, "--show-depends", m])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "modprobe --show-depends {m}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some(path) = line.strip_prefix("insmod ") {
                    let p = PathBuf::from(path.split_whitespace().next().unwrap_or(""));
                    if !files.contains(&p) {
                        files.push(p);
                    }
                }
            }
        }
        Ok(files)
    }
}

/// The libraries `bin` loads, from `ldd` (absolute paths, loader included).
fn libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// Copies `src` to `tree/dst` (dst absolute), creating directories; binaries of ours are
/// stripped of debug info on the way (a debug build is ~150 MB, stripped ~20 MB).
fn copy_into(tree: &Path, src: &Path, dst: &Path, strip: bool) {
    let to = tree.join(dst.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if strip {
        let st = Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(&to)
            .arg(src)
            .status()
            .unwrap();
        assert!(st.success(), "strip {}", src.display());
    } else {
        // Follow symlinks: the file itself, under the name the loader asks for.
        std::fs::copy(src, &to).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
}

/// Puts kernel module `m` into the tree as a plain `.ko` (busybox insmod may not read
/// the `.ko.xz`/`.ko.zst`/`.ko.gz` newer Debian kernels ship) and returns its path there.
fn add_module(tree: &Path, m: &Path) -> PathBuf {
    let name = m.to_str().unwrap();
    let tool = [(".xz", "xz"), (".zst", "zstd"), (".gz", "gzip")]
        .into_iter()
        .find(|(ext, _)| name.ends_with(ext));
    let Some((ext, tool)) = tool else {
        copy_into(tree, m, m, false);
        return m.to_path_buf();
    };
    let ko = PathBuf::from(name.strip_suffix(ext).unwrap());
    let to = tree.join(ko.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let out = Command::new(tool)
        .args(["-dc", name])
        .output()
        .unwrap_or_else(|e| panic!("{tool} -dc {name}: {e}"));
    assert!(out.status.success(), "{tool} -dc {name}");
    std::fs::write(&to, out.stdout).unwrap();
    ko
}

/// One program to run inside the VM, as a named step of the scenario.
pub struct Step {
    pub name: &'static str,
    /// Shell command run by the VM's init (stdout and stderr go to the console).
    pub command: String,
}

/// Builds `dir/initrd.cpio` with `/init` running `steps` in order, then powering off.
/// `binaries` go in as `/bin/<name>`, stripped, with their libraries.
pub fn build_initramfs(
    kit: &Kit,
    dir: &Path,
    binaries: &[(&str, &Path)],
    steps: &[Step],
) -> PathBuf {
    let tree = dir.join("tree");
    for d in [
        "bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "root",
    ] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    copy_into(&tree, &kit.busybox, Path::new("/bin/busybox"), false);
    let mut libs = BTreeSet::new();
    for (name, bin) in binaries {
        copy_into(&tree, bin, &Path::new("/bin").join(name), true);
        libs.extend(libraries(bin));
    }
    // Host tools keep their paths (/usr/sbin/ip ...), ahead of busybox in PATH.
    for tool in &kit.tools {
        copy_into(&tree, tool, tool, false);
        libs.extend(libraries(tool));
    }
    for lib in &libs {
        copy_into(&tree, lib, lib, false);
    }
    // Busybox applets: every name it knows that the tree does not already have.
    let list = Command::new(&kit.busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = tree.join("bin").join(applet);
        let taken = kit.tools.iter().any(|t| t.file_name().unwrap() == applet);
        if !link.exists() && !taken {
            std::os::unix::fs::symlink("busybox", &link).unwrap();
        }
    }
    let mut modules = String::new();
    for m in kit.module_files().expect("module dependencies") {
        let ko = add_module(&tree, &m);
        modules.push_str(&format!("{}\n", ko.display()));
    }
    std::fs::write(tree.join("modules.list"), modules).unwrap();
    std::fs::write(tree.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let init = tree.join("init");
    std::fs::write(&init, init_script(steps)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();

    let cpio = dir.join("initrd.cpio");
    let out = std::fs::File::create(&cpio).unwrap();
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .unwrap();
    let files = Command::new("find")
        .arg(".")
        .current_dir(&tree)
        .output()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&files.stdout)
        .unwrap();
    assert!(child.wait().unwrap().success(), "cpio");
    cpio
}

/// The VM's `/init`: mounts, modules, then each step between marker lines the host
/// parses (`PROTON-VM STEP <name> PASS|FAIL <seconds>`), then power off.
fn init_script(steps: &[Step]) -> String {
    let mut s = String::from(
        r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mkdir -p /var /dev/pts /dev/shm
ln -s /run /var/run
mount -t devpts devpts /dev/pts
echo 1 > /proc/sys/kernel/printk
ip link set lo up
up() { cut -d' ' -f1 /proc/uptime; }
echo "PROTON-VM BOOTED $(up)"
ok=PASS
while read m; do
  insmod "$m" || ok=FAIL
done < /modules.list
[ -e /dev/net/tun ] && [ -d /sys/module/wireguard ] || ok=FAIL
echo "PROTON-VM STEP modules $ok $(up)"
step() {
  name=$1; shift
  t0=$(up)
  echo "PROTON-VM BEGIN $name"
  if "$@"; then r=PASS; else r=FAIL; fi
  t1=$(up)
  echo "PROTON-VM STEP $name $r $(awk "BEGIN{print $t1-$t0}")"
}
"#,
    );
    for st in steps {
        s.push_str(&format!("step {} sh -c '{}' 2>&1\n", st.name, st.command));
    }
    s.push_str("echo \"PROTON-VM DONE $(up)\"\nsync\npoweroff -f\n");
    s
}

/// What the VM printed, and how long it ran.
pub struct Run {
    pub console: String,
    pub wall: Duration,
    pub timed_out: bool,
}

/// Boots the kernel with `initrd` under TCG (KVM is not usable here; `-cpu max` gives
/// the instructions the Debian kernel's crypto modules use) and waits for power-off,
/// killing qemu after `limit`.
pub fn boot(kit: &Kit, dir: &Path, initrd: &Path, limit: Duration) -> Run {
    let console = dir.join("console.log");
    let start = Instant::now();
    let mut child = Command::new(&kit.qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1G"])
        .args([
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kit.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet random.trust_cpu=on",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu");
    let mut timed_out = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let mut console = std::fs::read_to_string(&console).unwrap_or_default();
    if !out.stderr.is_empty() {
        console.push_str(&format!(
            "\n[qemu stderr] {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Run {
        console,
        wall,
        timed_out,
    }
}

/// The `PROTON-VM STEP` results in order: (name, passed, seconds).
pub fn steps(console: &str) -> Vec<(String, bool, String)> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("PROTON-VM STEP ")?;
            let mut w = rest.split_whitespace();
            Some((
                w.next()?.to_string(),
                w.next()? == "PASS",
                w.next().unwrap_or("?").to_string(),
            ))
        })
        .collect()
}
