//! Charts as SVG strings (plotters, no font files needed: browsers render the text), for the
//! CLI's output folder and, inline, for notebooks.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::report::EvalReport;

const SIZE: (u32, u32) = (720, 440);
const PALETTE: [RGBColor; 4] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(129, 114, 179),
];

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Other(format!("cannot draw chart: {e}"))
}

/// Bars with value labels over named categories.
fn bar_chart(
    title: &str,
    y_desc: &str,
    names: &[&str],
    values: &[f64],
    y_range: (f64, f64),
    label: impl Fn(f64) -> String,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = names.len() as u32;
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
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => names
                    .get(*i as usize)
                    .map_or(String::new(), |s| s.to_string()),
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        for (i, &v) in values.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(color.filled())
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
    Ok(svg)
}

/// Plaintext / quantized / encrypted accuracy (or R² for regression).
pub fn accuracy_chart(report: &EvalReport) -> Result<String> {
    let names = ["plaintext", "quantized", "encrypted"];
    if let Some(a) = &report.accuracy {
        let values = [a.plain * 100.0, a.quantized * 100.0, a.encrypted * 100.0];
        let low = values.iter().fold(100.0f64, |m, v| m.min(*v));
        let floor = ((low - 10.0) / 10.0).floor().max(0.0) * 10.0;
        bar_chart(
            &format!("Test accuracy: {} ({} rows)", report.dataset, report.n_test),
            "accuracy (%)",
            &names,
            &values,
            (floor, 104.0),
            |v| format!("{v:.2}%"),
        )
    } else {
        let r = report.r2.unwrap_or_default();
        let values = [r.plain, r.quantized, r.encrypted];
        let low = values.iter().fold(1.0f64, |m, v| m.min(*v)).min(0.0);
        bar_chart(
            &format!("Test R²: {} ({} rows)", report.dataset, report.n_test),
            "R² (1 = perfect)",
            &names,
            &values,
            (low, 1.08),
            |v| format!("{v:.4}"),
        )
    }
}

/// Median per-sample latency of each stage, one sample at a time.
pub fn latency_chart(report: &EvalReport) -> Result<String> {
    let l = &report.latency_ms;
    let values = [l.encrypt, l.infer, l.decrypt, l.total];
    let top = values.iter().fold(0.0f64, |m, v| m.max(*v)) * 1.2;
    bar_chart(
        &format!(
            "Per-sample latency, median of {} ({})",
            report.n_test, report.dataset
        ),
        "milliseconds per sample",
        &[
            "encrypt (client)",
            "infer (server)",
            "decrypt (client)",
            "total",
        ],
        &values,
        (0.0, top.max(1e-3)),
        |v| format!("{v:.3} ms"),
    )
}

/// Distribution of per-sample total latency (encrypt + infer + decrypt).
pub fn latency_histogram(report: &EvalReport) -> Result<String> {
    let totals = &report.per_sample.total_ms;
    if totals.is_empty() {
        return Err(Error::Other("no per-sample timings to chart".into()));
    }
    let lo = totals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = totals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = 24usize;
    let width = ((hi - lo) / bins as f64).max(1e-6);
    let mut counts = vec![0u32; bins];
    for &t in totals {
        counts[(((t - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Per-sample latency distribution ({} samples, {})",
                    totals.len(),
                    report.dataset
                ),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..lo + width * bins as f64, 0.0..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("encrypt + infer + decrypt (ms)")
            .y_desc("samples")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| format!("{v:.3}"))
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
    Ok(svg)
}

/// Writes the three charts into `dir` (created if missing); returns their paths.
pub fn write_charts(report: &EvalReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let charts = [
        ("accuracy.svg", accuracy_chart(report)?),
        ("latency_breakdown.svg", latency_chart(report)?),
        ("latency_distribution.svg", latency_histogram(report)?),
    ];
    charts
        .into_iter()
        .map(|(name, svg)| {
            let path = dir.join(name);
            std::fs::write(&path, svg).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}
