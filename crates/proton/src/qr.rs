//! QR codes for phone configs and invitations: in the terminal (two modules per text
//! row, so a 41×41 code fits an 80×24 screen) and as a PNG file.

use qrcode::{EcLevel, QrCode};
use std::path::Path;

/// Renders `text` as a QR code made of Unicode half blocks, with a quiet zone.
pub fn terminal(text: &str) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Writes `text` as a black-on-white PNG QR code, `scale` pixels per module, `0600`
/// (it may hold a private key).
pub fn write_png(text: &str, path: &Path, scale: u32) -> anyhow::Result<()> {
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
