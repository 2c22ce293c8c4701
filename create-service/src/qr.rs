//! QR codes of short links: one module matrix, drawn as a 1-bit PNG or as SVG.
//!
//! The encoder picks the smallest QR version that holds the text at error-correction
//! level M (15% of the symbol may be damaged or covered and it still reads), which
//! suits printed links. Both drawings carry the 4-module quiet zone the QR standard
//! asks for, and every module is a whole number of pixels so scanners see sharp edges.

use std::ops::RangeInclusive;

use qrcode::render::svg;
use qrcode::types::{Color, QrError};
use qrcode::{EcLevel, QrCode};

/// Light modules around the symbol on every side; scanners need the margin to find
/// the finder patterns.
pub const QUIET_ZONE: u32 = 4;

/// Pixels per module when the client does not ask: a short link at 8 px is an image of
/// about 300 px, legible on screen and in print.
pub const DEFAULT_MODULE_PX: u32 = 8;

/// Allowed pixels per module. The largest symbol (version 40, 177 modules) at 32 px is
/// under 6000 px a side, which bounds the work one request can ask for.
pub const MODULE_PX: RangeInclusive<u32> = 1..=32;

/// An image format of a QR code, named as the `format` query parameter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The spelling used by the `format` query parameter.
    pub fn parse(value: &str) -> Option<Format> {
        match value {
            "png" => Some(Format::Png),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("text does not fit in a QR code: {0}")]
    Encode(#[from] QrError),
    #[error("{0} pixels per module is outside {MODULE_PX:?}")]
    ModuleSize(u32),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The QR code of `text` in `format`, `module_px` pixels per module.
pub fn render(text: &str, format: Format, module_px: u32) -> Result<Vec<u8>, RenderError> {
    if !MODULE_PX.contains(&module_px) {
        return Err(RenderError::ModuleSize(module_px));
    }
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    match format {
        Format::Png => to_png(&code, module_px),
        Format::Svg => Ok(to_svg(&code, module_px).into_bytes()),
    }
}

/// Side of the drawn image in pixels, quiet zone included.
pub fn side_px(modules: usize, module_px: u32) -> usize {
    (modules + 2 * QUIET_ZONE as usize) * module_px as usize
}

fn to_svg(code: &QrCode, module_px: u32) -> String {
    // The renderer's own quiet zone is the standard 4 modules for the full-size codes
    // this encoder produces; a unit test holds it to `QUIET_ZONE`.
    code.render::<svg::Color>()
        .quiet_zone(true)
        .module_dimensions(module_px, module_px)
        .build()
}

/// Grayscale at one bit per pixel: the smallest PNG a black-and-white code can be,
/// and one that no viewer can render in anything but black and white.
fn to_png(code: &QrCode, module_px: u32) -> Result<Vec<u8>, RenderError> {
    let modules = code.width();
    let px = module_px as usize;
    let quiet = QUIET_ZONE as usize;
    let side = side_px(modules, module_px);
    let row_bytes = side.div_ceil(8);
    // All white (bit set) to start with: the quiet zone and the row padding stay so.
    let mut pixels = vec![0xFF_u8; row_bytes * side];
    let colors = code.to_colors();
    for (y, module_row) in colors.chunks(modules).enumerate() {
        let mut line = vec![0xFF_u8; row_bytes];
        for (x, _) in module_row
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == Color::Dark)
        {
            let left = (x + quiet) * px;
            for p in left..left + px {
                if let Some(byte) = line.get_mut(p / 8) {
                    *byte &= !(0x80 >> (p % 8));
                }
            }
        }
        let top = y + quiet;
        pixels
            .chunks_exact_mut(row_bytes)
            .skip(top * px)
            .take(px)
            .for_each(|row| row.copy_from_slice(&line));
    }

    let side = u32::try_from(side).map_err(|_| RenderError::ModuleSize(module_px))?;
    let mut out = Vec::with_capacity(pixels.len() / 8 + 128);
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "https://sho.rt/Ab3dE6gH9jK";

    fn decode_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn png_pixels_are_the_module_matrix_scaled_with_a_quiet_zone() {
        let code = QrCode::with_error_correction_level(TEXT, EcLevel::M).unwrap();
        let modules = code.width();
        let colors = code.to_colors();
        for px in [1, 3, 8] {
            let bytes = render(TEXT, Format::Png, px).unwrap();
            let (info, pixels) = decode_png(&bytes);
            let side = side_px(modules, px);
            assert_eq!((info.width as usize, info.height as usize), (side, side));
            assert_eq!(pixels.len(), side * side);
            for (i, value) in pixels.iter().enumerate() {
                let (x, y) = (i % side, i / side);
                let (mx, my) = (x / px as usize, y / px as usize);
                let quiet = QUIET_ZONE as usize;
                let dark = (quiet..quiet + modules).contains(&mx)
                    && (quiet..quiet + modules).contains(&my)
                    && colors[(my - quiet) * modules + (mx - quiet)] == Color::Dark;
                assert_eq!(
                    *value,
                    if dark { 0 } else { 255 },
                    "pixel ({x}, {y}) at {px} px"
                );
            }
        }
    }

    #[test]
    fn png_is_one_bit_grayscale() {
        let bytes = render(TEXT, Format::Png, 2).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes[..]));
        let reader = decoder.read_info().unwrap();
        assert_eq!(reader.info().color_type, png::ColorType::Grayscale);
        assert_eq!(reader.info().bit_depth, png::BitDepth::One);
    }

    #[test]
    fn svg_has_the_same_size_and_quiet_zone_as_the_png() {
        let code = QrCode::with_error_correction_level(TEXT, EcLevel::M).unwrap();
        let side = side_px(code.width(), 5);
        let svg = String::from_utf8(render(TEXT, Format::Svg, 5).unwrap()).unwrap();
        assert!(
            svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)),
            "{svg}"
        );
        // The first dark module is the top-left finder pattern's corner, just inside
        // the quiet zone.
        let corner = QUIET_ZONE * 5;
        assert!(svg.contains(&format!("M{corner} {corner}h5v5")), "{svg}");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn formats_parse_by_their_query_spelling() {
        assert_eq!(Format::parse("png"), Some(Format::Png));
        assert_eq!(Format::parse("svg"), Some(Format::Svg));
        for bad in ["", "PNG", "gif", "svg+xml"] {
            assert_eq!(Format::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn module_sizes_outside_the_bounds_are_refused() {
        for px in [0, 33, u32::MAX] {
            assert!(matches!(
                render(TEXT, Format::Png, px),
                Err(RenderError::ModuleSize(_))
            ));
        }
    }

    #[test]
    fn text_beyond_the_largest_symbol_is_an_error_not_a_panic() {
        let huge = "a".repeat(8000);
        assert!(matches!(
            render(&huge, Format::Png, 1),
            Err(RenderError::Encode(_))
        ));
    }
}
