//! Kernel WireGuard, tested for real in a VM. This machine's kernel has no WireGuard
//! module, so `kernel_wireguard_in_a_vm` boots Debian's kernel (`linux-image-amd64`)
//! under qemu/TCG with an initramfs packed from this machine's files, and runs the
//! `in_vm_*` tests of this very binary inside it, each as a step whose PASS/FAIL comes
//! back over the serial console:
//!
//! - `in_vm_kernel_backend`: proton-wg's kernel backend directly against a kernel peer
//!   configured with `wg`: handshake, ping, 100 peers added and removed live with the
//!   first peer's session untouched, stats through the backend and `wg show`, adoption
//!   of the link on restart, removal on down;
//! - `in_vm_gateway_kernel_worker_kernel`: `proton gateway run --backend kernel`, a
//!   worker joined with `proton join --backend kernel`, 100 `proton client add` and
//!   `proton peer remove` live, status through the daemon and `wg show`;
//! - `in_vm_gateway_kernel_worker_userspace`: the same with the worker on Proton's
//!   userspace data plane (`proton join --backend userspace`, `proton agent`).
//!
//! Outside the VM the `in_vm_*` tests are ignored (and skip if run anyway); the VM test skips (with the reason) when
//! qemu, the Debian kernel, busybox or root are missing.

#[path = "vm/backend.rs"]
mod backend;
#[path = "vm/boot.rs"]
mod boot;
#[path = "vm/gateway.rs"]
mod gateway;
#[path = "vm/net.rs"]
mod net;

use std::path::Path;
use std::time::Duration;

const IN_VM: &str = "PROTON_IN_VM";

/// The inner tests run only inside the VM (the init script sets PROTON_IN_VM).
fn in_vm(name: &str) -> bool {
    let inside = std::env::var_os(IN_VM).is_some();
    if !inside {
        eprintln!("skipping {name}: runs inside the VM booted by kernel_wireguard_in_a_vm");
    }
    inside
}

/// Marks a finished inner test on the console, so the host knows it really ran.
fn done(name: &str) {
    println!("PROTON-VM INNER-OK {name}");
}

#[test]
#[ignore = "runs inside the VM that kernel_wireguard_in_a_vm boots"]
fn in_vm_kernel_backend() {
    if !in_vm("in_vm_kernel_backend") {
        return;
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(backend::scenario());
    done("in_vm_kernel_backend");
}

#[test]
#[ignore = "runs inside the VM that kernel_wireguard_in_a_vm boots"]
fn in_vm_gateway_kernel_worker_kernel() {
    if !in_vm("in_vm_gateway_kernel_worker_kernel") {
        return;
    }
    gateway::scenario("kernel");
    done("in_vm_gateway_kernel_worker_kernel");
}

#[test]
#[ignore = "runs inside the VM that kernel_wireguard_in_a_vm boots"]
fn in_vm_gateway_kernel_worker_userspace() {
    if !in_vm("in_vm_gateway_kernel_worker_userspace") {
        return;
    }
    gateway::scenario("userspace");
    done("in_vm_gateway_kernel_worker_userspace");
}

const INNER: &[&str] = &[
    "in_vm_kernel_backend",
    "in_vm_gateway_kernel_worker_kernel",
    "in_vm_gateway_kernel_worker_userspace",
];

#[test]
fn kernel_wireguard_in_a_vm() {
    if std::env::var_os(IN_VM).is_some() {
        return; // never nest
    }
    let kit = match boot::Kit::find() {
        Ok(k) => k,
        Err(why) => {
            eprintln!("skipping kernel_wireguard_in_a_vm: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let steps: Vec<boot::Step> = INNER
        .iter()
        .map(|name| boot::Step {
            name,
            command: format!(
                "{IN_VM}=1 RUST_BACKTRACE=1 /bin/vmtest --exact {name} --ignored --nocapture --test-threads=1"
            ),
        })
        .collect();
    let initrd = boot::build_initramfs(
        &kit,
        dir.path(),
        &[
            ("proton", Path::new(env!("CARGO_BIN_EXE_proton"))),
            ("vmtest", &me),
        ],
        &steps,
    );
    let size = std::fs::metadata(&initrd).unwrap().len();
    eprintln!(
        "booting {} ({}) with a {} MB initramfs under qemu/TCG",
        kit.kernel.display(),
        kit.kver,
        size / 1_000_000
    );
    let run = boot::boot(&kit, dir.path(), &initrd, Duration::from_secs(1200));
    let results = boot::steps(&run.console);
    let summary: Vec<String> = results
        .iter()
        .map(|(n, ok, secs)| format!("{n}: {} in {secs} s", if *ok { "PASS" } else { "FAIL" }))
        .collect();
    let all_passed = !run.timed_out
        && results.len() == INNER.len() + 1
        && results.iter().all(|(_, ok, _)| *ok)
        && INNER
            .iter()
            .all(|n| run.console.contains(&format!("PROTON-VM INNER-OK {n}")));
    if !all_passed {
        eprintln!("--- VM console:\n{}\n--- end of VM console", run.console);
    }
    assert!(!run.timed_out, "the VM did not finish in time: {summary:?}");
    assert!(
        all_passed,
        "VM steps (every one must pass, and each inner test must have run): {summary:?}"
    );
    println!("--- VM console:\n{}\n--- end of VM console", run.console);
    println!(
        "VM scenario wall time: {:.1} s (boot to power-off, qemu TCG); steps: {}",
        run.wall.as_secs_f64(),
        summary.join(", ")
    );
}
