//! Image bytes -> the NCHW f32 tensor a CLIP image tower expects.
//!
//! Decoding (JPEG, PNG, WebP, GIF first frame, BMP, TIFF) uses the `image` crate, after checking
//! the byte count and the pixel count from the header, so a decompression bomb is refused before
//! any pixel buffer is allocated. EXIF orientation is applied; grey, alpha and 16-bit images
//! become 8-bit RGB (alpha dropped, 16-bit rounded). Then CLIP's reference preprocessing: resize
//! the shorter side with Pillow's bicubic filter, reproduced exactly (fixed-point weights,
//! antialiasing support when shrinking, 8-bit rounding between the passes, and Pillow 13's choice
//! of which pass runs first), centre crop, scale to [0, 1], normalise by mean and std.
//! Only the pixels inside the crop are ever resampled.

use std::io::Cursor;
use std::ops::Range;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::error::EmbedError;

/// Limits applied to untrusted image input before decoding.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    pub max_bytes: usize,
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 << 20,
            max_pixels: 50_000_000,
        }
    }
}

/// Where the centre crop starts when the margin is odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropRounding {
    /// torchvision's `CenterCrop` (open_clip): `round(margin / 2)`, ties to even.
    HalfEven,
    /// transformers' `center_crop`: `margin / 2` rounded down.
    Floor,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// The shorter side is resized to this many pixels.
    pub resize: u32,
    /// Side of the square centre crop; at most `resize`.
    pub crop: u32,
    pub crop_rounding: CropRounding,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Decodes, resizes, crops and normalises one image: `3 * crop * crop` values, channel-major.
pub fn preprocess(
    bytes: &[u8],
    config: &PreprocessConfig,
    limits: &ImageLimits,
) -> Result<Vec<f32>, EmbedError> {
    let rgb = decode_rgb(bytes, limits)?;
    Ok(normalize(&resize_crop(&rgb, config), config))
}

/// Decodes to 8-bit RGB with EXIF orientation applied.
pub fn decode_rgb(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, EmbedError> {
    if bytes.is_empty() {
        return Err(EmbedError::EmptyImage);
    }
    if bytes.len() > limits.max_bytes {
        return Err(EmbedError::ImageTooLarge {
            bytes: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = supported_format(bytes)?;
    if format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        return Err(EmbedError::CorruptImage(
            "JPEG data ends before its end-of-image marker".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(budget(limits));
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(EmbedError::EmptyImage);
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(EmbedError::ImageTooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    check_copies(width, height, decoder.color_type(), orientation, limits)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// The decoded image, the copy that orienting it makes and the RGB conversion all count against
/// the decoder's budget (`max_pixels * 8` bytes), so that no image needs more in total.
fn check_copies(
    width: u32,
    height: u32,
    color: image::ColorType,
    orientation: image::metadata::Orientation,
    limits: &ImageLimits,
) -> Result<(), EmbedError> {
    let pixels = u64::from(width) * u64::from(height);
    let decoded = pixels.saturating_mul(u64::from(color.bytes_per_pixel()));
    let oriented = match orientation {
        image::metadata::Orientation::NoTransforms => 0,
        _ => decoded,
    };
    let rgb = match color {
        image::ColorType::Rgb8 => 0,
        _ => pixels.saturating_mul(3),
    };
    let bytes = decoded.saturating_add(oriented).saturating_add(rgb);
    let limit = budget(limits);
    if bytes > limit {
        return Err(EmbedError::ImageTooMuchMemory {
            width,
            height,
            bytes,
            limit,
        });
    }
    Ok(())
}

/// Bytes one image may take while it is decoded (all copies together).
fn budget(limits: &ImageLimits) -> u64 {
    limits.max_pixels.saturating_mul(8).saturating_add(1 << 20)
}

fn supported_format(bytes: &[u8]) -> Result<ImageFormat, EmbedError> {
    let format = image::guess_format(bytes)
        .map_err(|_| EmbedError::UnsupportedImage("unrecognised data".to_string()))?;
    match format {
        ImageFormat::Jpeg
        | ImageFormat::Png
        | ImageFormat::WebP
        | ImageFormat::Gif
        | ImageFormat::Bmp
        | ImageFormat::Tiff => Ok(format),
        other => Err(EmbedError::UnsupportedImage(format!("{other:?}"))),
    }
}

/// The JPEG decoder pads a truncated scan with grey instead of failing, so look for the
/// end-of-image marker after the last start-of-scan marker (neither occurs inside scan data).
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}

fn decode_error(error: image::ImageError) -> EmbedError {
    use image::ImageError::*;
    match error {
        Unsupported(e) => EmbedError::UnsupportedImage(e.to_string()),
        Limits(e) => EmbedError::CorruptImage(format!("decoder memory limit exceeded: {e}")),
        other => EmbedError::CorruptImage(other.to_string()),
    }
}

/// Resizes the shorter side to `config.resize` and centre-crops to `config.crop`, as
/// torchvision/transformers do on a PIL image: the returned pixels equal Pillow's.
pub fn resize_crop(image: &RgbImage, config: &PreprocessConfig) -> RgbImage {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 || config.crop == 0 || config.crop > config.resize {
        // Not reachable through decode_rgb and ModelConfig; keeps any other input panic-free.
        return RgbImage::new(config.crop, config.crop);
    }
    let (new_w, new_h) = resized_size(width, height, config.resize);
    let crop = config.crop as usize;
    let horizontal = Coefficients::new(width, new_w, crop_offset(new_w, config), config.crop);
    let vertical = Coefficients::new(height, new_h, crop_offset(new_h, config), config.crop);
    let src = Plane {
        pixels: image.as_raw(),
        width: width as usize,
    };
    // Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the
    // width does; the 8-bit rounding between the passes makes the order visible.
    let shrink_h = i64::from(height) - i64::from(new_h);
    let pixels = if shrink_h > 0 && shrink_h > (i64::from(width) - i64::from(new_w)) * 2 {
        let columns = horizontal.source_span();
        let mid = vertical.resample_rows(&src, columns.clone());
        let mid = Plane {
            pixels: &mid,
            width: columns.len(),
        };
        horizontal
            .shifted(columns.start)
            .resample_columns(&mid, 0..crop)
    } else {
        let rows = vertical.source_span();
        let mid = horizontal.resample_columns(&src, rows.clone());
        let mid = Plane {
            pixels: &mid,
            width: crop,
        };
        vertical.shifted(rows.start).resample_rows(&mid, 0..crop)
    };
    RgbImage::from_raw(config.crop, config.crop, pixels).unwrap_or_default()
}

/// torchvision/transformers shortest-edge size: the long side is `int(size * long / short)`.
fn resized_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((u64::from(size) * u64::from(long)) as f64 / f64::from(short)) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

fn crop_offset(size: u32, config: &PreprocessConfig) -> u32 {
    let margin = size.saturating_sub(config.crop);
    let floor = margin / 2;
    match config.crop_rounding {
        CropRounding::Floor => floor,
        CropRounding::HalfEven if margin % 2 == 1 && floor % 2 == 1 => floor + 1,
        CropRounding::HalfEven => floor,
    }
}

/// Scales to [0, 1] and normalises; HWC u8 in, CHW f32 out.
pub fn normalize(crop: &RgbImage, config: &PreprocessConfig) -> Vec<f32> {
    let plane = crop.width() as usize * crop.height() as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, pixel) in crop.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(pixel[c]) / 255.0 - config.mean[c]) / config.std[c];
        }
    }
    out
}

/// An interleaved RGB buffer.
struct Plane<'a> {
    pixels: &'a [u8],
    width: usize,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's resampling weights for the output positions `first..first + count` of a resize from
/// `in_size` to `out_size` samples along one axis.
struct Coefficients {
    /// (first source sample, fixed-point weights) per output sample.
    taps: Vec<(usize, Vec<i32>)>,
}

impl Coefficients {
    fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Self {
        let scale = f64::from(in_size) / f64::from(out_size);
        let taps = (first..first.saturating_add(count))
            .map(|out| taps_for(f64::from(out), scale, in_size))
            .collect();
        Self { taps }
    }

    /// Source samples [start, end) that these weights read.
    fn source_span(&self) -> Range<usize> {
        let start = self.taps.iter().map(|(s, _)| *s).min().unwrap_or(0);
        let end = self
            .taps
            .iter()
            .map(|(s, w)| s + w.len())
            .max()
            .unwrap_or(0);
        start..end.max(start)
    }

    /// The same weights reading from a buffer that starts at source sample `offset`.
    fn shifted(&self, offset: usize) -> Self {
        let taps = self
            .taps
            .iter()
            .map(|(s, w)| (s - offset, w.clone()))
            .collect();
        Self { taps }
    }

    /// Horizontal pass over rows `rows` of `src`: one output pixel per tap set and row.
    fn resample_columns(&self, src: &Plane, rows: Range<usize>) -> Vec<u8> {
        let stride = src.width * 3;
        let mut out = Vec::with_capacity(rows.len() * self.taps.len() * 3);
        for row in rows {
            let line = &src.pixels[row * stride..(row + 1) * stride];
            for (start, weights) in &self.taps {
                out.extend(convolve(line, *start, weights, 3));
            }
        }
        out
    }

    /// Vertical pass over columns `columns` of `src`: one output row per tap set.
    fn resample_rows(&self, src: &Plane, columns: Range<usize>) -> Vec<u8> {
        let stride = src.width * 3;
        let mut out = Vec::with_capacity(self.taps.len() * columns.len() * 3);
        for (start, weights) in &self.taps {
            for x in columns.clone() {
                out.extend(convolve(&src.pixels[x * 3..], *start, weights, stride));
            }
        }
        out
    }
}

/// One output position: Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
fn taps_for(out: f64, scale: f64, in_size: u32) -> (usize, Vec<i32>) {
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    let inv_scale = 1.0 / filter_scale;
    let center = (out + 0.5) * scale;
    let xmin = ((center - support + 0.5) as i64).max(0);
    let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
    let xmin = xmin.min(xmax);
    let raw: Vec<f64> = (xmin..xmax)
        .map(|x| bicubic((x as f64 - center + 0.5) * inv_scale))
        .collect();
    let total: f64 = raw.iter().sum();
    let fixed = raw
        .iter()
        .map(|&w| {
            let w = if total != 0.0 { w / total } else { w };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
        })
        .collect();
    (xmin as usize, fixed)
}

/// Pillow's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Weighted sum of the RGB samples `data[(start + k) * step + c]`, rounded and clamped like Pillow.
fn convolve(data: &[u8], start: usize, weights: &[i32], step: usize) -> [u8; 3] {
    let mut sums = [1i64 << (PRECISION_BITS - 1); 3];
    for (k, &w) in weights.iter().enumerate() {
        let at = (start + k) * step;
        for (c, sum) in sums.iter_mut().enumerate() {
            *sum += i64::from(data[at + c]) * i64::from(w);
        }
    }
    sums.map(|s| (s >> PRECISION_BITS).clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::Path;

    const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");

    fn references() -> Value {
        let text = std::fs::read_to_string(format!("{MODELS}/reference/images.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn config(refs: &Value, layout: &str) -> PreprocessConfig {
        let meta = &refs["layouts"][layout];
        let triple = |v: &Value| [0, 1, 2].map(|i| v[i].as_f64().unwrap() as f32);
        let size = meta["size"].as_u64().unwrap() as u32;
        let crop_rounding = if layout.starts_with("openclip") {
            CropRounding::HalfEven
        } else {
            CropRounding::Floor
        };
        PreprocessConfig {
            resize: size,
            crop: size,
            crop_rounding,
            mean: triple(&meta["mean"]),
            std: triple(&meta["std"]),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fnv1a64(bytes: &[u8]) -> String {
        let hash = bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        format!("{hash:016x}")
    }

    /// The reference crop is HWC u8; its tensor is CHW.
    fn chw(crop: &[u8]) -> Vec<u8> {
        (0..3)
            .flat_map(|c| crop.iter().skip(c).step_by(3).copied())
            .collect()
    }

    /// (max |u8 difference|, max |tensor difference|) against a committed reference crop.
    fn compare(crop: &RgbImage, expected_chw: &[u8], config: &PreprocessConfig) -> (u8, f64) {
        let got = chw(crop.as_raw());
        let levels = got
            .iter()
            .zip(expected_chw)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let plane = got.len() / 3;
        let tensor = normalize(crop, config);
        let worst = expected_chw.iter().enumerate().map(|(i, &v)| {
            let c = i / plane;
            let want =
                (f64::from(v) / 255.0 - f64::from(config.mean[c])) / f64::from(config.std[c]);
            (want - f64::from(tensor[i])).abs()
        });
        (levels, worst.fold(0.0, f64::max))
    }

    #[test]
    fn generated_images_match_reference_preprocessing() {
        let refs = references();
        let mut worst_lossless = 0.0f64;
        for case in refs["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("file").is_some())
        {
            let file = case["file"].as_str().unwrap();
            let bytes = std::fs::read(Path::new(MODELS).join(file)).unwrap();
            let rgb = decode_rgb(&bytes, &ImageLimits::default()).unwrap();
            let size = [rgb.width(), rgb.height()].map(u64::from);
            assert_eq!(case["decoded_size"], serde_json::json!(size), "{file}");
            for layout in ["openclip-tiny", "hf-tiny"] {
                let config = config(&refs, layout);
                let crop = resize_crop(&rgb, &config);
                let expected = hex(case[layout]["crop_u8_hex"].as_str().unwrap());
                let (levels, tensor) = compare(&crop, &expected, &config);
                eprintln!(
                    "{layout:14} {file:32} max diff {levels} levels, {tensor:.2e} in the tensor"
                );
                let jpeg = file.ends_with(".jpg");
                assert!(
                    levels <= if jpeg { 6 } else { 0 },
                    "{layout} {file}: {levels} levels"
                );
                if !jpeg {
                    worst_lossless = worst_lossless.max(tensor);
                }
            }
        }
        assert!(
            worst_lossless < 1e-6,
            "lossless max tensor diff {worst_lossless}"
        );
    }

    #[test]
    fn photos_match_reference_preprocessing() {
        let refs = references();
        // photo_dir is relative to the project root (MODELS is <root>/tests/models).
        let dir = Path::new(MODELS)
            .join("../..")
            .join(refs["photo_dir"].as_str().unwrap());
        if !dir.is_dir() {
            eprintln!(
                "SKIP: {} is absent (the photo cases need ../shared)",
                dir.display()
            );
            return;
        }
        for case in refs["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("photo").is_some())
        {
            let name = case["photo"].as_str().unwrap();
            let rgb = decode_rgb(
                &std::fs::read(dir.join(name)).unwrap(),
                &ImageLimits::default(),
            )
            .unwrap();
            for layout in ["openclip-tiny", "hf-tiny"] {
                let config = config(&refs, layout);
                let crop = resize_crop(&rgb, &config);
                let same =
                    fnv1a64(&chw(crop.as_raw())) == case[layout]["crop_fnv1a64"].as_str().unwrap();
                let tensor = normalize(&crop, &config);
                let mean = tensor.iter().map(|&v| f64::from(v)).sum::<f64>() / tensor.len() as f64;
                let want = case[layout]["tensor_stats"]["mean"].as_f64().unwrap();
                eprintln!(
                    "{layout:14} {name:28} identical crop: {same}, tensor mean diff {:.2e}",
                    (mean - want).abs()
                );
                assert!((mean - want).abs() < 5e-3, "{layout} {name}");
            }
        }
    }

    fn limits() -> ImageLimits {
        ImageLimits::default()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(MODELS).join("images").join(name)).unwrap()
    }

    /// A 24-bit BMP header announcing `width` x `height` pixels, with no pixel data.
    fn bmp_header(width: i32, height: i32) -> Vec<u8> {
        let mut b = b"BM".to_vec();
        b.extend(1000u32.to_le_bytes());
        b.extend([0u8; 4]);
        b.extend(54u32.to_le_bytes());
        b.extend(40u32.to_le_bytes());
        b.extend(width.to_le_bytes());
        b.extend(height.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(24u16.to_le_bytes());
        b.extend([0u8; 24]);
        b
    }

    #[test]
    fn bad_images_are_errors() {
        let cfg = PreprocessConfig {
            resize: 8,
            crop: 8,
            crop_rounding: CropRounding::Floor,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let run = |bytes: &[u8], limits: &ImageLimits| preprocess(bytes, &cfg, limits);
        assert!(matches!(run(&[], &limits()), Err(EmbedError::EmptyImage)));
        let jpeg = fixture("photo_like_320x240.jpg");
        assert!(matches!(
            run(&jpeg[..jpeg.len() / 2], &limits()),
            Err(EmbedError::CorruptImage(_))
        ));
        let png = fixture("rgb_37x23.png");
        assert!(matches!(
            run(&png[..png.len() - 40], &limits()),
            Err(EmbedError::CorruptImage(_))
        ));
        assert!(matches!(
            run(b"definitely not an image", &limits()),
            Err(EmbedError::UnsupportedImage(_))
        ));
        assert!(matches!(
            run(b"P6\n1 1\n255\n\0\0\0", &limits()),
            Err(EmbedError::UnsupportedImage(_))
        ));
        let small = ImageLimits {
            max_bytes: 1000,
            ..limits()
        };
        assert!(matches!(
            run(&png, &small),
            Err(EmbedError::ImageTooLarge { .. })
        ));
        let few = ImageLimits {
            max_pixels: 100,
            ..limits()
        };
        assert!(matches!(
            run(&png, &few),
            Err(EmbedError::ImageTooManyPixels { .. })
        ));
        let bomb = bmp_header(60_000, 60_000);
        assert!(matches!(
            run(&bomb, &limits()),
            Err(EmbedError::ImageTooManyPixels { .. })
        ));
        let zero_width_gif = [
            b"GIF89a".as_slice(),
            &[0, 0, 5, 0, 0, 0, 0],
            &[0x2C, 0, 0, 0, 0, 0, 0, 5, 0, 0],
            &[2, 2, 0x44, 0x01, 0, 0x3B],
        ]
        .concat();
        assert!(matches!(
            run(&zero_width_gif, &limits()),
            Err(EmbedError::EmptyImage)
        ));
    }

    // Fuzzing (fuzz/README.md): mutated and random image bytes give a tensor or an error.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const SEEDS: [&str; 6] = [
            "rgb_37x23.png",
            "grey16_33x33.png",
            "progressive_90x70.jpg",
            "exif_rotate90_40x24.jpg",
            "palette_50x35.gif",
            "lossless_45x31.webp",
        ];

        fn config() -> PreprocessConfig {
            PreprocessConfig {
                resize: 32,
                crop: 24,
                crop_rounding: CropRounding::HalfEven,
                mean: [0.5; 3],
                std: [0.25; 3],
            }
        }

        /// A seed image with bytes overwritten, then possibly truncated.
        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16);
            (
                prop::sample::select(SEEDS.to_vec()),
                flips,
                any::<Option<prop::sample::Index>>(),
            )
                .prop_map(|(seed, flips, cut)| {
                    let mut bytes = fixture(seed);
                    for (at, byte) in flips {
                        let at = at.index(bytes.len());
                        bytes[at] = byte;
                    }
                    if let Some(cut) = cut {
                        bytes.truncate(cut.index(bytes.len()) + 1);
                    }
                    bytes
                })
        }

        /// A format's magic bytes followed by random data.
        fn random_after_magic() -> impl Strategy<Value = Vec<u8>> {
            let magic = prop::sample::select(vec![
                b"\x89PNG\r\n\x1a\n".to_vec(),
                vec![0xFF, 0xD8, 0xFF],
                b"GIF89a".to_vec(),
                b"BM".to_vec(),
                b"RIFF\0\0\0\0WEBPVP8L".to_vec(),
                b"II*\0".to_vec(),
            ]);
            (magic, prop::collection::vec(any::<u8>(), 0..512))
                .prop_map(|(magic, rest)| [magic, rest].concat())
        }

        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            let limits = ImageLimits {
                max_bytes: 1 << 20,
                max_pixels: 1 << 20,
            };
            match preprocess(bytes, &config(), &limits) {
                Ok(tensor) => prop_assert_eq!(tensor.len(), 3 * 24 * 24),
                Err(EmbedError::Inference(e)) => prop_assert!(false, "not an input error: {e}"),
                Err(_) => {}
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn mutated_images(bytes in mutated()) {
                check(&bytes)?;
            }

            #[test]
            fn random_bytes_after_magic(bytes in random_after_magic()) {
                check(&bytes)?;
            }
        }
    }

    #[test]
    fn every_copy_counts_against_the_budget() {
        use image::metadata::Orientation::{NoTransforms, Rotate90};
        use image::ColorType::{Rgb8, Rgba16, Rgba8};
        let side = 7071; // 50 MP, the default pixel limit: a budget of 400 MB (+1 MB)
        let default = ImageLimits::default();
        assert!(check_copies(side, side, Rgb8, Rotate90, &default).is_ok()); // 150 + 150 MB
        for (color, orientation) in [(Rgba16, NoTransforms), (Rgba8, Rotate90)] {
            // 400 + 150 MB; 200 + 200 + 150 MB
            let err = check_copies(side, side, color, orientation, &default).unwrap_err();
            assert!(
                matches!(err, EmbedError::ImageTooMuchMemory { .. }),
                "{err}"
            );
        }
        assert!(check_copies(4000, 4000, Rgba16, Rotate90, &default).is_ok()); // 128 + 128 + 48 MB
    }

    #[test]
    fn gif_first_frame_and_exif_orientation() {
        let gif = decode_rgb(&fixture("palette_50x35.gif"), &limits()).unwrap();
        assert_eq!(gif.dimensions(), (50, 35));
        let rotated = decode_rgb(&fixture("exif_rotate90_40x24.jpg"), &limits()).unwrap();
        assert_eq!(rotated.dimensions(), (24, 40));
    }
}
