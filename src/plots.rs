//! Charts as SVG (plotters' SVG backend: no font files or fontconfig; the viewer renders the
//! text). An [`Svg`] displays inline in evcxr notebooks and saves to a file for the CLI.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::report::EvalReport;

const SIZE: (u32, u32) = (720, 440);
const PALETTE: [RGBColor; 5] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(129, 114, 179),
    RGBColor(196, 78, 82),
];

/// An SVG chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svg(pub String);

impl Svg {
    /// The SVG document's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the SVG to `path`.
    ///
    /// # Errors
    ///
    /// `Error::Io` if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, &self.0).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// An HTML `<img>` holding the SVG as a data URI. JupyterLab renders raw `image/svg+xml`
    /// outputs only in trusted notebooks, so a committed notebook opened elsewhere would show
    /// no charts; this form survives its HTML sanitizer.
    pub fn to_html_img(&self) -> String {
        use base64::Engine;
        format!(
            "<img alt=\"chart\" src=\"data:image/svg+xml;base64,{}\"/>",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }

    /// Inline display in evcxr (Jupyter's Rust kernel).
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_html_img()
        );
    }
}

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Other(format!("cannot draw chart: {e}"))
}

/// Bars with value labels over named categories: `bars` holds `(name, value)` pairs, the
/// y axis spans `y_range` (`(min, max)`, in the values' units), and `label` formats each
/// value shown above its bar.
///
/// # Errors
///
/// `Error::Other` if `bars` is empty, or if plotters fails to draw the chart.
pub fn bars(
    title: &str,
    y_desc: &str,
    bars: &[(&str, f64)],
    y_range: (f64, f64),
    label: impl Fn(f64) -> String,
) -> Result<Svg> {
    if bars.is_empty() {
        return Err(Error::Other("a bar chart needs at least one bar".into()));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = bars.len() as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((0u32..n - 1).into_segmented(), y_range.0..y_range.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => bars
                    .get(*i as usize)
                    .map_or(String::new(), |b| b.0.to_string()),
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        for (i, &(_, v)) in bars.iter().enumerate() {
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(PALETTE[i % PALETTE.len()].filled())
                        .margin(24)
                        .data([(i as u32, v)]),
                )
                .map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label(v),
                    (SegmentValue::CenterOf(i as u32), v),
                    TextStyle::from(("sans-serif", 15).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// Plaintext / quantized / encrypted accuracy, as fractions in `0..=1` (drawn as percentages).
///
/// # Errors
///
/// `Error::Other` if plotters fails to draw the chart.
pub fn accuracy_bars(title: &str, plain: f64, quantized: f64, encrypted: f64) -> Result<Svg> {
    let values = [plain * 100.0, quantized * 100.0, encrypted * 100.0];
    let low = values.iter().fold(100.0f64, |m, v| m.min(*v));
    let floor = ((low - 10.0) / 10.0).floor().max(0.0) * 10.0;
    bars(
        title,
        "accuracy (%)",
        &[
            ("plaintext", values[0]),
            ("quantized", values[1]),
            ("encrypted", values[2]),
        ],
        (floor, 104.0),
        |v| format!("{v:.2}%"),
    )
}

/// Median per-sample latency of each stage and their total, in milliseconds.
///
/// # Errors
///
/// `Error::Other` if plotters fails to draw the chart.
pub fn latency_bars(title: &str, encrypt_ms: f64, infer_ms: f64, decrypt_ms: f64) -> Result<Svg> {
    let total = encrypt_ms + infer_ms + decrypt_ms;
    bars(
        title,
        "milliseconds per sample",
        &[
            ("encrypt (client)", encrypt_ms),
            ("infer (server)", infer_ms),
            ("decrypt (client)", decrypt_ms),
            ("total", total),
        ],
        (0.0, (total * 1.2).max(1e-3)),
        |v| format!("{v:.3} ms"),
    )
}

/// Histogram of values (24 equal bins), e.g. per-sample times in milliseconds; `x_desc`
/// labels the x axis (name its unit).
///
/// # Errors
///
/// `Error::Other` if `samples_ms` is empty or holds a non-finite value, or if plotters fails
/// to draw the chart.
pub fn histogram(title: &str, x_desc: &str, samples_ms: &[f64]) -> Result<Svg> {
    if samples_ms.is_empty() || samples_ms.iter().any(|v| !v.is_finite()) {
        return Err(Error::Other("no finite timings to chart".into()));
    }
    let lo = samples_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples_ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = 24usize;
    let width = ((hi - lo) / bins as f64).max(1e-6);
    let mut counts = vec![0u32; bins];
    for &t in samples_ms {
        counts[(((t - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..lo + width * bins as f64, 0.0..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("count")
            .x_label_formatter(&|v| tick(*v, hi - lo))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.92, c as f64)],
                    PALETTE[0].filled(),
                )
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// A tick label with as many decimals as the axis span needs.
fn tick(v: f64, span: f64) -> String {
    let decimals = if span >= 50.0 {
        0
    } else if span >= 5.0 {
        1
    } else if span >= 0.5 {
        2
    } else {
        3
    };
    format!("{v:.decimals$}")
}

/// Lines with markers: one `(name, points)` series each, on linear axes; points are `(x, y)`
/// in the units `x_desc` and `y_desc` name. A legend appears with more than one series.
///
/// # Errors
///
/// `Error::Other` if there are no points or one is not finite, or if plotters fails to draw
/// the chart.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<Svg> {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if points.is_empty() || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return Err(Error::Other("a line chart needs finite points".into()));
    }
    let (x0, x1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (y0, y1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let pad = ((y1 - y0) * 0.1).max(y1.abs() * 0.05).max(1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(x0 - 0.3..x1 + 0.3, (y0 - pad)..(y1 + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(plot_err)?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// Grouped bars: for each group (x axis), one bar per series; a missing value leaves a gap.
/// With `log10`, the y axis is logarithmic (values must then be positive); bars carry their
/// values, formatted by `label`. Each series holds one value per group (`groups.len()`).
///
/// # Errors
///
/// `Error::Other` if `groups` or `series` is empty, a series does not have one entry per
/// group, no value is present, a value is not finite (or not positive with `log10`), or if
/// plotters fails to draw the chart.
pub fn grouped_bars(
    title: &str,
    y_desc: &str,
    groups: &[&str],
    series: &[(&str, Vec<Option<f64>>)],
    log10: bool,
    label: impl Fn(f64) -> String,
) -> Result<Svg> {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().flatten().copied())
        .collect();
    if groups.is_empty()
        || series.is_empty()
        || series.iter().any(|s| s.1.len() != groups.len())
        || values.is_empty()
        || values
            .iter()
            .any(|v| !v.is_finite() || (log10 && *v <= 0.0))
    {
        return Err(Error::Other(
            "grouped bars need one finite (positive, on a log axis) value per group and series"
                .into(),
        ));
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let t = |v: f64| if log10 { v.log10() } else { v };
    let (y0, y1) = if log10 {
        (t(lo).floor().min(0.0), t(hi).ceil() + 1.0)
    } else {
        // Headroom for the legend above the bars.
        (0f64.min(lo), hi * 1.4)
    };
    let n = groups.len();
    let k = series.len() as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0 + 160, SIZE.1)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..n as f64, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(if log10 { 0 } else { 4 })
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 1e-6 && i < n {
                    groups[i].to_string()
                } else {
                    String::new()
                }
            })
            .y_desc(y_desc)
            .y_label_formatter(&|v| {
                if log10 {
                    let x = 10f64.powf(*v);
                    if (v - v.round()).abs() < 1e-9 {
                        if x >= 1.0 {
                            format!("{x:.0}")
                        } else {
                            format!("{x}")
                        }
                    } else {
                        String::new()
                    }
                } else {
                    format!("{v:.2}")
                }
            })
            .draw()
            .map_err(plot_err)?;
        for (j, (name, vals)) in series.iter().enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            let width = 0.8 / k;
            let bars: Vec<(f64, f64, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as f64 + 0.1 + j as f64 * width, v, width)))
                .collect();
            chart
                .draw_series(bars.iter().map(|&(x, v, w)| {
                    Rectangle::new([(x, y0), (x + w * 0.92, t(v))], color.filled())
                }))
                .map_err(plot_err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart
                .draw_series(bars.iter().map(|&(x, v, w)| {
                    Text::new(
                        label(v),
                        (x + w * 0.46, t(v)),
                        TextStyle::from(("sans-serif", 11).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                }))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// Grayscale images (row-major pixels, `side × side`, any range) with a caption under each,
/// `columns` images per row; each image is scaled to its own maximum (darker is larger).
///
/// # Errors
///
/// `Error::Other` if `images` is empty, `columns` is 0, an image does not hold `side × side`
/// pixels, or if plotters fails to draw the chart.
pub fn image_gallery(
    title: &str,
    side: usize,
    images: &[(Vec<f64>, String)],
    columns: usize,
) -> Result<Svg> {
    if images.is_empty() || columns == 0 || images.iter().any(|(p, _)| p.len() != side * side) {
        return Err(Error::Other(format!(
            "a gallery needs images of {side}×{side} pixels"
        )));
    }
    let rows = images.len().div_ceil(columns);
    let cell = 150u32;
    let mut svg = String::new();
    {
        let size = (cell * columns as u32, cell * rows as u32 + 40);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(plot_err)?;
        let areas = root.split_evenly((rows, columns));
        for (area, (pixels, caption)) in areas.iter().zip(images) {
            let max = pixels.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
            let (area, text) = area.split_vertically(cell - 34);
            let mut chart = ChartBuilder::on(&area)
                .margin(6)
                .build_cartesian_2d(0..side as i32, 0..side as i32)
                .map_err(plot_err)?;
            chart
                .draw_series((0..side * side).map(|k| {
                    let (r, c) = ((k / side) as i32, (k % side) as i32);
                    let level = 255 - (pixels[k].max(0.0) / max * 255.0).round() as u8;
                    Rectangle::new(
                        [(c, side as i32 - r - 1), (c + 1, side as i32 - r)],
                        RGBColor(level, level, level).filled(),
                    )
                }))
                .map_err(plot_err)?;
            text.draw(&Text::new(
                caption.clone(),
                (6, 4),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// The accuracy (or R² for regression) chart of a report.
///
/// # Errors
///
/// `Error::Other` if plotters fails to draw the chart.
pub fn accuracy_chart(report: &EvalReport) -> Result<Svg> {
    if let Some(a) = &report.accuracy {
        accuracy_bars(
            &format!("Test accuracy: {} ({} rows)", report.dataset, report.n_test),
            a.plain,
            a.quantized,
            a.encrypted,
        )
    } else {
        let r = report.r2.unwrap_or_default();
        let values = [r.plain, r.quantized, r.encrypted];
        let low = values.iter().fold(1.0f64, |m, v| m.min(*v)).min(0.0);
        bars(
            &format!("Test R²: {} ({} rows)", report.dataset, report.n_test),
            "R² (1 = perfect)",
            &[
                ("plaintext", r.plain),
                ("quantized", r.quantized),
                ("encrypted", r.encrypted),
            ],
            (low, 1.08),
            |v| format!("{v:.4}"),
        )
    }
}

/// The per-stage latency chart of a report (median ms per sample).
///
/// # Errors
///
/// `Error::Other` if plotters fails to draw the chart.
pub fn latency_chart(report: &EvalReport) -> Result<Svg> {
    let l = &report.latency_ms;
    latency_bars(
        &format!(
            "Per-sample latency, median of {} ({})",
            report.n_test, report.dataset
        ),
        l.encrypt,
        l.infer,
        l.decrypt,
    )
}

/// The latency distribution of a report: a histogram of `per_sample.total_ms` (ms).
///
/// # Errors
///
/// `Error::Other` if the report holds no per-sample timings (a report built by hand, or one
/// with no test rows) or a non-finite one, or if plotters fails to draw the chart.
pub fn latency_distribution(report: &EvalReport) -> Result<Svg> {
    histogram(
        &format!(
            "Per-sample latency distribution ({} samples, {})",
            report.per_sample.total_ms.len(),
            report.dataset
        ),
        "encrypt + infer + decrypt (ms)",
        &report.per_sample.total_ms,
    )
}

/// Writes the report's three charts into `dir` (created if missing): `accuracy.svg`,
/// `latency_breakdown.svg` and `latency_distribution.svg`; returns their paths.
///
/// # Errors
///
/// `Error::Io` if `dir` cannot be created or a file cannot be written; `Error::Other` if a
/// chart cannot be drawn (see [`latency_distribution`]).
pub fn write_charts(report: &EvalReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    [
        ("accuracy.svg", accuracy_chart(report)?),
        ("latency_breakdown.svg", latency_chart(report)?),
        ("latency_distribution.svg", latency_distribution(report)?),
    ]
    .into_iter()
    .map(|(name, svg)| {
        let path = dir.join(name);
        svg.save(&path)?;
        Ok(path)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_titled_svg_with_their_labels() {
        let svg = accuracy_bars("Accuracy test", 0.9825, 0.9912, 0.9912).unwrap();
        for text in [
            "Accuracy test",
            "plaintext",
            "encrypted",
            "98.25%",
            "accuracy (%)",
        ] {
            assert!(svg.as_str().contains(text), "missing {text}");
        }
        assert!(svg.as_str().starts_with("<svg"));
        let html = svg.to_html_img();
        assert!(html.starts_with("<img") && html.contains("data:image/svg+xml;base64,"));
        let lat = latency_bars("Latency", 0.07, 0.08, 0.01).unwrap();
        assert!(
            lat.as_str().contains("0.160 ms") && lat.as_str().contains("milliseconds per sample")
        );
        let hist = histogram("Spread", "ms", &[0.1, 0.2, 0.2, 0.3]).unwrap();
        assert!(hist.as_str().contains("Spread") && hist.as_str().contains("count"));
        let line = lines(
            "Lines",
            "bits",
            "accuracy",
            &[("a", vec![(3.0, 90.0), (8.0, 99.0)])],
        )
        .unwrap();
        assert!(line.as_str().contains("Lines"));
        let gallery = image_gallery(
            "Digits",
            2,
            &[(vec![0.0, 1.0, 2.0, 3.0], "true 1".into())],
            4,
        )
        .unwrap();
        assert!(gallery.as_str().contains("true 1"));
    }

    #[test]
    fn bad_chart_input_is_an_error_not_a_panic() {
        assert!(histogram("t", "x", &[]).is_err());
        assert!(histogram("t", "x", &[f64::NAN]).is_err());
        assert!(lines("t", "x", "y", &[]).is_err());
        assert!(bars("t", "y", &[], (0.0, 1.0), |v| v.to_string()).is_err());
        assert!(image_gallery("t", 8, &[(vec![0.0; 3], String::new())], 2).is_err());
        let f = |v: f64| v.to_string();
        assert!(grouped_bars("t", "y", &["a"], &[("s", vec![Some(0.0)])], true, f).is_err());
        assert!(grouped_bars("t", "y", &["a", "b"], &[("s", vec![Some(1.0)])], false, f).is_err());
        assert!(grouped_bars("t", "y", &["a"], &[("s", vec![None])], false, f).is_err());
    }

    #[test]
    fn grouped_bars_draw_every_value_and_the_legend() {
        let svg = grouped_bars(
            "Latency",
            "ms",
            &["bc", "digits"],
            &[
                ("fhe-ml", vec![Some(0.2), Some(0.5)]),
                ("other", vec![Some(20.0), None]),
            ],
            true,
            |v| format!("{v} ms"),
        )
        .unwrap();
        for text in [
            "Latency", "bc", "digits", "fhe-ml", "other", "0.2 ms", "20 ms",
        ] {
            assert!(svg.as_str().contains(text), "{text}");
        }
    }
}
