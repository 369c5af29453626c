//! QR codes for phone configs and invitations: in the terminal (two modules per text
//! row, so a code up to 40 modules wide, quiet zone included, fits 80×24) and as a PNG
//! file.

use qrcode::{EcLevel, QrCode};
use std::path::Path;

/// Why a QR code could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit a QR code.
    #[error("{0}")]
    Code(#[from] qrcode::types::QrError),
    #[error(transparent)]
    Png(#[from] png::EncodingError),
    #[error(transparent)]
    Write(#[from] proton_core::host::HostError),
}

/// The screen a terminal QR code must fit on to be scanned without scrolling.
pub const SCREEN: (usize, usize) = (80, 24);

/// Renders `text` as a QR code made of Unicode half blocks, with a quiet zone.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Columns and rows a terminal drawing takes.
pub fn size(art: &str) -> (usize, usize) {
    let columns = art.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    (columns, art.lines().count())
}

/// `None` when `art` fits [`SCREEN`]; otherwise what to tell the user (stderr).
pub fn too_big_note(art: &str) -> Option<String> {
    let (columns, rows) = size(art);
    let (max_c, max_r) = SCREEN;
    (columns > max_c || rows > max_r).then(|| {
        format!(
            "note: this QR code is {columns}×{rows} characters, more than an {max_c}×{max_r} terminal shows at once; \
             make the terminal taller (or the font smaller) to scan it, or write it as a picture with --qr-png FILE"
        )
    })
}

/// Writes `text` as a black-on-white PNG QR code, `scale` pixels per module, `0600`
/// (it may hold a private key).
pub fn write_png(text: &str, path: &Path, scale: u32) -> Result<(), QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    let width = code.width() as u32;
    let quiet = 4;
    let side = (width + 2 * quiet) * scale;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % width, i as u32 / width);
        for dy in 0..scale {
            for dx in 0..scale {
                let x = (mx + quiet) * scale + dx;
                let y = (my + quiet) * scale + dy;
                pixels[(y * side + x) as usize] = 0;
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side, side);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    proton_core::host::write_atomic(path, &out, proton_core::host::SECRET_MODE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_invitation_fits_80x24_and_a_client_config_says_to_use_qr_png() {
        let invite =
            terminal("proton1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .unwrap();
        let (c, r) = size(&invite);
        assert!(c <= 80 && r <= 24, "{c}x{r}");
        assert_eq!(too_big_note(&invite), None);
        // A full client config (two keys, address, DNS, endpoint) is a version 10+ code.
        let config = "[Interface]\nPrivateKey = 4Ie3Q1p3l2bKJ0f2Gk6Sx5wqzv3yV9yN1uWm1Qk7a2E=\n\
            Address = 10.7.7.4/32\nDNS = 10.7.7.1, proton.internal\nMTU = 1420\n\n[Peer]\n\
            # proton (gateway)\nPublicKey = 0mK6h3m4M5m6o7p8q9r0s1t2u3v4w5x6y7z8A9B0C1E=\n\
            Endpoint = vps.example.com:51820\nAllowedIPs = 10.7.7.0/24\nPersistentKeepalive = 25\n";
        let art = terminal(config).unwrap();
        let (_, rows) = size(&art);
        assert!(rows > 24, "{rows}");
        let note = too_big_note(&art).expect("a note when it does not fit");
        assert!(note.contains("--qr-png"), "{note}");
    }
}
