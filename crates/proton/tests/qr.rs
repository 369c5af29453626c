//! The QR codes a phone scans decode, with a reader we did not write (`zbarimg` from
//! zbar-tools), to exactly the text Proton printed: the `client add` config, from the PNG
//! and from the terminal drawing, and the `invite` line from its terminal drawing.
//! Skipped when zbarimg is missing (`.ci/run` installs it).

use proton_test_support::cli::{gateway, proton};

use std::path::Path;
use std::process::Command;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn zbarimg() -> bool {
    let found = Command::new("zbarimg").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipping: needs zbarimg (apt-get install zbar-tools)");
    }
    found
}

/// What zbarimg reads from an image file: the QR's text.
fn decode(image: &Path) -> String {
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zbarimg found no QR code in {}",
        image.display()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_art(line: &str) -> bool {
    line.contains(['█', '▀', '▄'])
}

/// Paints the terminal drawing (each character two modules high: `█` both light, `▀`
/// top, `▄` bottom, space both dark, as a dark terminal shows it) into a greyscale PGM
/// with a light margin, 4 pixels a module.
fn terminal_qr_to_pgm(stdout: &str, path: &Path) {
    let art: Vec<Vec<char>> = stdout
        .lines()
        .filter(|l| is_art(l))
        .map(|l| l.chars().collect())
        .collect();
    assert!(!art.is_empty(), "no terminal QR in:\n{stdout}");
    let width = art.iter().map(Vec::len).max().unwrap();
    let mut light = Vec::new();
    for line in &art {
        let cell = |i: usize| line.get(i).copied().unwrap_or(' ');
        light.push((0..width).map(|i| matches!(cell(i), '█' | '▀')).collect());
        light.push(
            (0..width)
                .map(|i| matches!(cell(i), '█' | '▄'))
                .collect::<Vec<_>>(),
        );
    }
    let (scale, margin) = (4, 16);
    let (w, h) = (width * scale + 2 * margin, light.len() * scale + 2 * margin);
    let mut pgm = format!("P5 {w} {h} 255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let module = (y >= margin && x >= margin)
                .then(|| light.get((y - margin) / scale)?.get((x - margin) / scale))
                .flatten();
            pgm.push(if module.is_none_or(|l| *l) { 255 } else { 0 });
        }
    }
    std::fs::write(path, pgm).unwrap();
}

#[test]
fn a_phone_scanning_the_client_qr_gets_exactly_the_printed_config() {
    if !zbarimg() {
        return;
    }
    let gw = gateway(BIN);
    let png = gw.path().join("phone.png");
    let out = proton(
        BIN,
        gw.path(),
        &["client", "add", "phone", "--qr-png", png.to_str().unwrap()],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: String = stdout
        .lines()
        .take_while(|l| !is_art(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(printed.contains("PrivateKey = "), "{printed}");

    let from_png = decode(&png);
    assert_eq!(from_png.trim_end(), printed.trim_end(), "the PNG");
    let pgm = gw.path().join("terminal.pgm");
    terminal_qr_to_pgm(&stdout, &pgm);
    assert_eq!(
        decode(&pgm).trim_end(),
        printed.trim_end(),
        "the terminal QR"
    );
    // What the phone gets is a config the WireGuard tools accept.
    proton_core::wgconf::WgQuickConfig::parse(&from_png).unwrap();
}

#[test]
fn the_invitation_qr_carries_the_invitation_line() {
    if !zbarimg() {
        return;
    }
    let gw = gateway(BIN);
    let out = proton(BIN, gw.path(), &["invite", "home-1"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    let pgm = gw.path().join("invite.pgm");
    terminal_qr_to_pgm(&stdout, &pgm);
    assert_eq!(decode(&pgm).trim(), line);
}
