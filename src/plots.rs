//! Charts as SVG (plotters' SVG backend: no font files or fontconfig; the viewer renders the
//! text). An [`Svg`] displays inline in evcxr notebooks and saves to a file for the CLI.
//!
//! Every chart follows the same rules, so that it reads at a glance and cannot mislead:
//!
//! - **Bars start at zero** on a linear axis. On a logarithmic axis (an [`Axis::log`]) they
//!   start at a labelled power of ten and the axis description says "log scale".
//! - **Human units** on every axis, chosen by a [`Unit`]: times given in milliseconds print as
//!   "250 µs", "1.5 ms" or "2 s"; sizes in bytes as "512 B", "4 KiB", "28 MiB"; counts on a log
//!   axis as powers of ten ("1000", "10⁴"). Log axes label decades (1-2-5 steps when the
//!   data span less than a decade and a half), never a raw number such as 100000000000.
//! - **Percentages stay within 0–100%**: a [`Unit::Percent`] axis never goes past 100%; a
//!   value label that has no room above its bar goes inside it, and value labels carry the
//!   precision that small differences need (96.49% against 97.37%).
//! - **Readable at notebook width** (charts 760 or 880 px wide): text is at least 12.9 px
//!   (tick labels, legends and axis descriptions 13.7 px; [`image_gallery`]'s captions
//!   aside); legends sit below the plot, never over the bars; long category names wrap.
//! - **One colour per system or mode** in every chart: [`color_for`] maps names such as
//!   "plaintext", "encrypted", "Concrete ML" or "label (sanitized)" to fixed colours.

use std::path::{Path, PathBuf};

use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::report::EvalReport;

/// Canvas width of single-series charts, in pixels.
const WIDTH: u32 = 760;
/// Canvas width of grouped bars, whose groups need more room.
const WIDE: u32 = 880;
/// Canvas height without the legend, in pixels.
const HEIGHT: u32 = 440;
/// Font sizes in plotters' units: the SVG's font-size is the size / 1.24 (title 18.5 px,
/// tick labels, axis descriptions and legends 13.7 px, values on bars 12.9 px).
const TITLE_PT: f64 = 23.0;
const TEXT_PT: f64 = 17.0;
const VALUE_PT: f64 = 16.0;
/// One line of text (13.7 px) with its leading, in pixels.
const LINE_PX: i32 = 18;
const FONT: &str = "sans-serif";
/// The bars of a histogram (a distribution has no system or mode of its own).
const HISTOGRAM_COLOR: RGBColor = RGBColor(79, 109, 122);

const KIB: f64 = 1024.0;
const MIB: f64 = KIB * KIB;
const GIB: f64 = MIB * KIB;

/// The unit of an axis's values, which decides how its ticks and the values on bars print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Percentages, given in `0..=100` (not fractions): "96.5%". An axis in percent never
    /// goes below 0% or past 100%, and values outside `0..=100` are refused.
    Percent,
    /// Durations, given in milliseconds: "250 µs", "1.5 ms", "2 s" (ns, µs, ms or s, whichever
    /// keeps the number short).
    Ms,
    /// Sizes, given in bytes: "512 B", "4 KiB", "28.8 MiB", "1.2 GiB" (binary prefixes).
    Bytes,
    /// Counts (bootstraps, rows): whole numbers up to 9999, then "12.3k", "4.5M"; on a log
    /// axis powers of ten ("1", "10", "100", "1000", "10⁴").
    Count,
    /// Any other quantity (a loss, R², bits): plain numbers with three significant digits
    /// (large ones as "12.3k", "4.5M"); the axis description names the quantity.
    Plain,
}

impl Unit {
    /// `(factor, suffix, from)`: the unit's prefixes, largest first; a value of magnitude at
    /// least `from` prints as `value / factor` followed by `suffix`.
    fn prefixes(self) -> &'static [(f64, &'static str, f64)] {
        match self {
            Unit::Percent => &[(1.0, "%", 0.0)],
            Unit::Ms => &[
                (1e3, " s", 1e3),
                (1.0, " ms", 1.0),
                (1e-3, " µs", 1e-3),
                (1e-6, " ns", 0.0),
            ],
            Unit::Bytes => &[
                (GIB, " GiB", GIB),
                (MIB, " MiB", MIB),
                (KIB, " KiB", KIB),
                (1.0, " B", 0.0),
            ],
            Unit::Count | Unit::Plain => &[
                (1e9, "G", 1e9),
                (1e6, "M", 1e6),
                (1e3, "k", 1e4),
                (1.0, "", 0.0),
            ],
        }
    }

    /// The prefix `(factor, suffix)` for values of magnitude `magnitude`.
    fn prefix(self, magnitude: f64) -> (f64, &'static str) {
        let all = self.prefixes();
        let (f, s, _) = all
            .iter()
            .find(|p| magnitude >= p.2)
            .unwrap_or(&all[all.len() - 1]);
        (*f, *s)
    }

    /// `v` in this unit, as a value label on a bar or in a table: three significant digits
    /// in the prefix that suits its magnitude ("204 µs", "12.3 ms", "1.5 s", "204 B",
    /// "28.8 MiB", "12.3k"); percentages with one decimal ("96.5%"), sizes under 1 KiB and
    /// counts under 10⁴ whole ("204 B", "1500"). A non-finite `v` prints as Rust prints it.
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return format!("{v}");
        }
        match self {
            Unit::Percent => format!("{v:.1}%"),
            Unit::Bytes if v.abs() < KIB => format!("{v:.0} B"),
            Unit::Count if v.abs() < 1e4 && v.fract() == 0.0 => format!("{v:.0}"),
            _ => {
                let (factor, suffix) = self.prefix(round_sig(v.abs(), 3));
                format!("{}{suffix}", sig(v / factor, 3))
            }
        }
    }
}

/// A y axis (or the value axis of a chart): its [`Unit`] and whether it is logarithmic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// How ticks and values print.
    pub unit: Unit,
    /// A logarithmic axis (values must be positive); its ticks are decades in human units.
    pub log: bool,
}

impl Axis {
    /// A linear axis in `unit`; bars on it start at zero.
    pub const fn linear(unit: Unit) -> Self {
        Self { unit, log: false }
    }

    /// A logarithmic axis in `unit`, labelled at powers of ten ("1 µs", "10 µs", …;
    /// "1 KiB", "10 KiB", …); bars on it start at the highest labelled decade at least three
    /// times below the smallest value, so that the shortest bar still shows.
    pub const fn log(unit: Unit) -> Self {
        Self { unit, log: true }
    }
}

/// `x` rounded to `digits` significant digits.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// `x` with `digits` significant digits, trailing zeros dropped: "1.5", "12", "0.0012".
fn sig(x: f64, digits: i32) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = round_sig(x, digits).abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).clamp(0, 9) as usize;
    trim_zeros(format!("{x:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `k` in superscript digits ("⁴", "⁻³").
fn superscript(k: i32) -> String {
    k.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

/// The fixed colours of systems, modes and stages: `(keywords, colour)`, first match wins.
const ROLES: [(&[&str], RGBColor); 11] = [
    (&["concrete"], RGBColor(129, 114, 179)),
    (&["tenseal"], RGBColor(147, 120, 96)),
    (&["total"], RGBColor(95, 95, 95)),
    (&["top-", "top "], RGBColor(218, 139, 195)),
    (&["label"], RGBColor(196, 78, 82)),
    (&["scores"], RGBColor(100, 181, 205)),
    (&["encrypted", "fhe-ml", "fhe_ml"], RGBColor(221, 132, 82)),
    (&["quantiz", "clear"], RGBColor(85, 168, 104)),
    (&["plain", "float"], RGBColor(76, 114, 176)),
    (&["encrypt", "decrypt"], RGBColor(204, 185, 116)),
    (&["infer"], RGBColor(46, 90, 135)),
];

/// Colours of names that match no role, picked by a hash of the name.
const FALLBACK: [RGBColor; 6] = [
    RGBColor(27, 158, 119),
    RGBColor(231, 41, 138),
    RGBColor(102, 166, 30),
    RGBColor(230, 171, 2),
    RGBColor(166, 118, 29),
    RGBColor(94, 79, 162),
];

fn role_color(name: &str) -> Option<RGBColor> {
    let name = name.to_lowercase();
    ROLES
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| name.contains(k)))
        .map(|r| r.1)
}

/// FNV-1a of the lower-cased name: stable across runs, platforms and Rust versions.
fn fallback_index(name: &str) -> usize {
    let hash = name
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % FALLBACK.len() as u64) as usize
}

/// The colour of a series, bar or legend entry named `name`, the same in every chart. The
/// name is matched case-insensitively against this table; the first row whose keyword it
/// contains wins:
///
/// | keyword in the name | colour | meaning |
/// |---|---|---|
/// | `concrete` | #8172B3 purple | Concrete ML |
/// | `tenseal` | #937860 brown | TenSEAL |
/// | `total` | #5F5F5F grey | the sum of the stages |
/// | `top-`, `top ` | #DA8BC3 pink | top-K mode |
/// | `label` | #C44E52 red | label mode |
/// | `scores` | #64B5CD light blue | scores mode |
/// | `encrypted`, `fhe-ml`, `fhe_ml` | #DD8452 orange | encrypted results, fhe-ml |
/// | `quantiz`, `clear` | #55A868 green | the quantized model, the clear twin |
/// | `plain`, `float` | #4C72B0 blue | plaintext (float) model |
/// | `encrypt`, `decrypt` | #CCB974 sand | the client's stages |
/// | `infer` | #2E5A87 navy | the server's stage |
///
/// Other names get one of six further colours (teal, magenta, lime, mustard, ochre, indigo)
/// by a stable hash of the name, so they too keep their colour from chart to chart; within one
/// chart, a name whose fallback colour another name already took gets the next free one.
pub fn color_for(name: &str) -> RGBColor {
    role_color(name).unwrap_or(FALLBACK[fallback_index(name)])
}

/// The colours of the series of one chart: [`color_for`] each name, except that a name
/// outside the table does not take a fallback colour that another name of the chart holds.
fn chart_colors(names: &[&str]) -> Vec<RGBColor> {
    let mut colors: Vec<Option<RGBColor>> = names.iter().map(|n| role_color(n)).collect();
    for (i, name) in names.iter().enumerate() {
        if colors[i].is_some() {
            continue;
        }
        let start = fallback_index(name);
        let pick = (0..FALLBACK.len())
            .map(|k| FALLBACK[(start + k) % FALLBACK.len()])
            .find(|c| !colors.contains(&Some(*c)))
            .unwrap_or(FALLBACK[start]);
        colors[i] = Some(pick);
    }
    colors
        .into_iter()
        .map(|c| c.unwrap_or(FALLBACK[0]))
        .collect()
}

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

fn bad(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

/// Refuses values an axis cannot show: none, non-finite, not positive on a log axis,
/// outside `0..=100` in percent.
fn check_values(values: &[f64], axis: Axis, chart: &str) -> Result<()> {
    if values.is_empty() {
        return Err(bad(format!("{chart}: no values to draw")));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("{chart}: value {v} is not finite")));
    }
    if axis.log {
        if let Some(v) = values.iter().find(|v| **v <= 0.0) {
            return Err(bad(format!(
                "{chart}: value {v} cannot be drawn on a log axis (values must be positive)"
            )));
        }
    }
    if axis.unit == Unit::Percent {
        if let Some(v) = values.iter().find(|v| !(-1e-9..=100.0 + 1e-9).contains(*v)) {
            return Err(bad(format!(
                "{chart}: {v} is not a percentage in 0..=100 (give percentages, not fractions)"
            )));
        }
    }
    Ok(())
}

/// An axis's range and labelled ticks, in plotted coordinates: the values themselves on a
/// linear axis, their base-10 logarithms on a log axis.
#[derive(Debug, Clone)]
struct Ticks {
    log: bool,
    lo: f64,
    hi: f64,
    marks: Vec<(f64, String)>,
}

impl Ticks {
    /// Where value `v` is plotted.
    fn pos(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// Where bars start: zero on a linear axis, the bottom of a log axis.
    fn base(&self) -> f64 {
        if self.log {
            self.lo
        } else {
            0.0
        }
    }

    fn label(&self, p: f64) -> String {
        self.marks
            .iter()
            .find(|m| (m.0 - p).abs() <= 1e-9 * (1.0 + p.abs()))
            .map(|m| m.1.clone())
            .unwrap_or_default()
    }

    fn positions(&self) -> Vec<f64> {
        self.marks.iter().map(|m| m.0).collect()
    }

    fn widest_label(&self) -> f64 {
        self.marks
            .iter()
            .map(|m| text_width(&m.1, TEXT_PT))
            .fold(0.0, f64::max)
    }

    /// Linear ticks at multiples of a 1-2-5 step (about `n` intervals over `lo..hi`),
    /// printed in the prefix that suits the larger end. With `snap`, the range widens to the
    /// outer ticks so that the axis ends on labelled values; `cap` (and 0–100 for percent)
    /// bounds it.
    fn linear(unit: Unit, lo: f64, hi: f64, n: usize, snap: bool, cap: Option<f64>) -> Self {
        let (factor, suffix) = unit.prefix(lo.abs().max(hi.abs()));
        let (a, b) = (lo / factor, hi / factor);
        let mut step = nice_step((b - a) / n.max(1) as f64);
        if unit == Unit::Count {
            step = step.max(1.0 / factor);
        }
        let (first, last) = if snap {
            ((a / step + 1e-9).floor(), (b / step - 1e-9).ceil())
        } else {
            ((a / step - 1e-9).ceil(), (b / step + 1e-9).floor())
        };
        let decimals = decimals(step);
        let (mut floor, mut ceil) = (f64::NEG_INFINITY, cap.unwrap_or(f64::INFINITY));
        if unit == Unit::Percent {
            floor = 0.0;
            ceil = ceil.min(100.0);
        }
        let marks: Vec<(f64, String)> = (first as i64..=last as i64)
            .map(|i| i as f64 * step)
            .map(|t| (t * factor, format!("{t:.decimals$}{suffix}")))
            .filter(|m| m.0 >= floor - 1e-9 && m.0 <= ceil + 1e-9)
            .collect();
        let (lo, hi) = if snap {
            (
                (first * step * factor).max(floor),
                (last * step * factor).min(ceil),
            )
        } else {
            (lo, hi)
        };
        Ticks {
            log: false,
            lo,
            hi,
            marks,
        }
    }

    /// Log ticks over positive `min..=max`: the range runs from a labelled decade at or
    /// below `min / below` to one at or above `max * above` (at most 100% in percent); decades
    /// only, or 1-2-5 steps when fewer than three decades fall in it, thinned past twelve.
    fn log(unit: Unit, min: f64, max: f64, below: f64, above: f64) -> Result<Self> {
        let all = log_candidates(unit);
        let majors: Vec<&(f64, String, bool)> = all.iter().filter(|c| c.2).collect();
        let mut top = max * above;
        if unit == Unit::Percent {
            top = top.min(100.0).max(max);
        }
        let lo = majors
            .iter()
            .rev()
            .find(|c| c.0 <= min / below * (1.0 + 1e-9))
            .map(|c| c.0);
        let hi = majors
            .iter()
            .find(|c| c.0 >= top * (1.0 - 1e-9) && c.0 > lo.unwrap_or(0.0))
            .map(|c| c.0);
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Err(bad(format!(
                "values from {min} to {max} are outside what a log axis in {unit:?} labels"
            )));
        };
        let within =
            |c: &&(f64, String, bool)| c.0 >= lo * (1.0 - 1e-9) && c.0 <= hi * (1.0 + 1e-9);
        let mut chosen: Vec<&(f64, String, bool)> = majors.iter().copied().filter(within).collect();
        if chosen.len() < 3 {
            chosen = all.iter().filter(within).collect();
        }
        if chosen.len() > 12 {
            let every = chosen.len().div_ceil(10);
            chosen = chosen.into_iter().step_by(every).collect();
        }
        Ok(Ticks {
            log: true,
            lo: lo.log10(),
            hi: hi.log10(),
            marks: chosen.iter().map(|c| (c.0.log10(), c.1.clone())).collect(),
        })
    }

    /// The value axis of a bar chart holding `values`: from zero (or, on a log axis, from a
    /// decade at least three times below the smallest value) to a labelled tick with room for the values above
    /// the bars, within `cap` and 0–100% in percent.
    fn for_bars(axis: Axis, values: &[f64], cap: Option<f64>) -> Result<Self> {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if axis.log {
            return Ticks::log(axis.unit, lo, hi, 3.0, 1.8);
        }
        let (mut a, mut b) = (lo.min(0.0), hi.max(0.0));
        b += (b - a) * 0.1;
        if a < 0.0 {
            a -= (b - a) * 0.05;
        }
        if b - a <= 0.0 {
            b = 1.0;
        }
        Ok(Ticks::linear(axis.unit, a, b, 5, true, cap))
    }

    /// The y axis of a line chart holding `values`: the data's range, padded (not below zero
    /// for data that is not), on labelled ticks (within 0–100% in percent).
    fn for_points(axis: Axis, values: &[f64]) -> Result<Self> {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if axis.log {
            return Ticks::log(axis.unit, lo, hi, 1.0, 1.0);
        }
        let pad = if hi > lo {
            (hi - lo) * 0.08
        } else if hi != 0.0 {
            hi.abs() * 0.05
        } else {
            1.0
        };
        let (mut a, mut b) = (lo - pad, hi + pad);
        if lo >= 0.0 {
            a = a.max(0.0);
        }
        if axis.unit == Unit::Percent {
            (a, b) = (a.max(0.0), b.min(100.0));
        }
        Ok(Ticks::linear(axis.unit, a, b, 5, true, None))
    }
}

/// The smallest of 1, 2, 5 times a power of ten (or 25 times one) that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    // 2.5 only where its multiples stay whole (25, 250): ticks such as 87.5% read worse.
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .filter(|&m| m != 2.5 || magnitude >= 10.0)
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// The decimals that multiples of `step` need.
fn decimals(step: f64) -> usize {
    (0..=6)
        .find(|d| {
            let x = step * 10f64.powi(*d as i32);
            (x - x.round()).abs() < 1e-6 * x.abs().max(1.0)
        })
        .unwrap_or(6)
}

/// Every value a log axis in `unit` may label, ascending: `(value, label, major)`. Majors
/// are decades (for bytes 1, 10 and 100 of each binary prefix: "1 KiB", "10 KiB", "100 KiB",
/// "1 MiB"); the others are the 2 and 5 steps between them.
fn log_candidates(unit: Unit) -> Vec<(f64, String, bool)> {
    let mut out = Vec::new();
    match unit {
        Unit::Bytes => {
            for k in -3..0 {
                let v = 10f64.powi(k);
                out.push((v, format!("{} B", sig(v, 1)), true));
            }
            let names = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
            for (p, name) in names.iter().enumerate() {
                let base = KIB.powi(p as i32);
                for (m, major) in [
                    (1.0, true),
                    (2.0, false),
                    (5.0, false),
                    (10.0, true),
                    (20.0, false),
                    (50.0, false),
                    (100.0, true),
                    (200.0, false),
                    (500.0, false),
                ] {
                    out.push((m * base, format!("{m} {name}"), major));
                }
            }
        }
        _ => {
            let (from, to) = match unit {
                Unit::Ms => (-7, 7),
                Unit::Percent => (-4, 2),
                _ => (-12, 15),
            };
            for k in from..=to {
                for (m, major) in [(1.0, true), (2.0, false), (5.0, false)] {
                    let v = m * 10f64.powi(k);
                    if unit == Unit::Percent && v > 100.0 {
                        continue;
                    }
                    let label = match unit {
                        Unit::Ms => Unit::Ms.format(v),
                        Unit::Percent => format!("{}%", sig(v, 1)),
                        _ if (-3..=3).contains(&k) => sig(v, 1),
                        _ if major => format!("10{}", superscript(k)),
                        _ => format!("{m}×10{}", superscript(k)),
                    };
                    out.push((v, label, major));
                }
            }
        }
    }
    out
}

/// Estimated width in pixels of `s` in sans-serif at plotters size `pt`, on the wide side
/// (DejaVu Sans, Linux's usual sans-serif, is wider than Arial). SVG viewers do the real
/// layout; this only sizes margins, wraps names and decides where value labels go.
fn text_width(s: &str, pt: f64) -> f64 {
    let px = pt / 1.24;
    s.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 0.28,
            ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' => 0.36,
            'm' | 'w' | 'M' | 'W' => 0.86,
            '%' => 0.95,
            c if c.is_ascii_uppercase() => 0.7,
            c if c.is_ascii_digit() => 0.62,
            _ => 0.58,
        })
        .sum::<f64>()
        * px
}

/// `text` broken at spaces into lines at most `max_px` wide (a longer word keeps its own
/// line), at most three lines.
fn wrap(text: &str, max_px: f64, pt: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), pt) <= max_px => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.len() > 3 {
        let rest = lines.split_off(2).join(" ");
        lines.push(rest);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// Dark text on light fills, white on dark ones.
fn text_on(fill: RGBColor) -> RGBColor {
    let lum = 0.299 * f64::from(fill.0) + 0.587 * f64::from(fill.1) + 0.114 * f64::from(fill.2);
    if lum > 150.0 {
        BLACK
    } else {
        WHITE
    }
}

fn text_style(pt: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, pt).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
enum Mark {
    /// A filled square (bars).
    Bar,
    /// A line with a marker: 0 solid with circles, 1 dashed with squares, 2 dashed with
    /// triangles, 3 dashed with crosses.
    Line(usize),
}

struct Entry {
    name: String,
    color: RGBColor,
    mark: Mark,
}

/// Rows of legend entries `(index, x offset)` fitting `width` pixels.
fn legend_rows(entries: &[Entry], width: f64) -> Vec<Vec<(usize, f64)>> {
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut x = 0.0;
    for (i, e) in entries.iter().enumerate() {
        let w = swatch_width(e.mark) + 8.0 + text_width(&e.name, TEXT_PT) + 24.0;
        if rows.is_empty() || (x + w > width && x > 0.0) {
            rows.push(Vec::new());
            x = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push((i, x));
        }
        x += w;
    }
    rows
}

fn swatch_width(mark: Mark) -> f64 {
    match mark {
        Mark::Bar => 14.0,
        Mark::Line(_) => 30.0,
    }
}

/// A marker of style `kind` (see [`Mark::Line`]) at pixel `p`.
fn draw_marker(
    area: &DrawingArea<SVGBackend, Shift>,
    p: (i32, i32),
    kind: usize,
    color: RGBColor,
) -> Result<()> {
    match kind % 4 {
        0 => area.draw(&Circle::new(p, 4, color.filled())),
        1 => area.draw(&Rectangle::new(
            [(p.0 - 4, p.1 - 4), (p.0 + 4, p.1 + 4)],
            color.filled(),
        )),
        2 => area.draw(&TriangleMarker::new(p, 6, color.filled())),
        _ => area.draw(&Cross::new(p, 5, color.stroke_width(2))),
    }
    .map_err(plot_err)
}

/// The legend, in rows from pixel `(x0, y0)` on `root`.
fn draw_legend(
    root: &DrawingArea<SVGBackend, Shift>,
    entries: &[Entry],
    x0: i32,
    y0: i32,
    width: f64,
) -> Result<()> {
    for (r, row) in legend_rows(entries, width).iter().enumerate() {
        let y = y0 + r as i32 * (LINE_PX + 6) + LINE_PX / 2;
        for &(i, dx) in row {
            let e = &entries[i];
            let x = x0 + dx as i32;
            match e.mark {
                Mark::Bar => root
                    .draw(&Rectangle::new(
                        [(x, y - 7), (x + 14, y + 7)],
                        e.color.filled(),
                    ))
                    .map_err(plot_err)?,
                Mark::Line(kind) => {
                    if kind == 0 {
                        root.draw(&PathElement::new(
                            vec![(x, y), (x + 30, y)],
                            e.color.stroke_width(2),
                        ))
                        .map_err(plot_err)?;
                    } else {
                        for (a, b) in [(0, 8), (11, 19), (22, 30)] {
                            root.draw(&PathElement::new(
                                vec![(x + a, y), (x + b, y)],
                                e.color.stroke_width(2),
                            ))
                            .map_err(plot_err)?;
                        }
                    }
                    draw_marker(root, (x + 15, y), kind, e.color)?;
                }
            }
            let tx = x + swatch_width(e.mark) as i32 + 8;
            root.draw(&Text::new(
                e.name.clone(),
                (tx, y),
                text_style(TEXT_PT, BLACK, HPos::Left, VPos::Center),
            ))
            .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Height in pixels of the legend of `entries` on a canvas `width` wide.
fn legend_height(entries: &[Entry], width: u32) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    let rows = legend_rows(entries, legend_width(width)).len() as u32;
    rows * (LINE_PX as u32 + 6) + 12
}

fn legend_width(width: u32) -> f64 {
    f64::from(width) - 2.0 * f64::from(MARGIN) - 16.0
}

const MARGIN: u32 = 16;

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticks, Ticks>>;

/// A [`Ticks`] is a plotters axis: linear over `lo..hi` in plotted coordinates, with its
/// marks as the only key points (mesh lines and labels); no light lines.
impl Ranged for Ticks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        if self.hi == self.lo {
            return (limit.0 + limit.1) / 2;
        }
        let fraction = (v - self.lo) / (self.hi - self.lo);
        let length = f64::from(limit.1 - limit.0);
        limit.0 + (length * fraction + 1e-3 * length.signum()).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.positions()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The parts of a chart around its plot: title, axes, legend.
struct Frame<'t> {
    title: &'t str,
    width: u32,
    x_desc: Option<&'t str>,
    y_desc: String,
    /// Pixels under the plot for the x labels (and x description).
    x_area: u32,
    legend: Vec<Entry>,
}

impl<'t> Frame<'t> {
    /// The frame of a line chart: full width, room under the plot for the x ticks and the
    /// x description.
    fn lines(title: &'t str, x_desc: &'t str, y_desc: String, legend: Vec<Entry>) -> Self {
        Frame {
            title,
            width: WIDTH,
            x_desc: Some(x_desc),
            y_desc,
            x_area: LINE_PX as u32 * 2 + 16,
            legend,
        }
    }

    fn height(&self) -> u32 {
        HEIGHT + legend_height(&self.legend, self.width)
    }

    fn title_pt(&self) -> f64 {
        let room = f64::from(self.width) - 2.0 * f64::from(MARGIN);
        TITLE_PT.min(TITLE_PT * room / text_width(self.title, TITLE_PT).max(1.0))
    }

    /// Fills the canvas, draws the title and the legend, and builds the chart with its mesh:
    /// x ticks `x` (none for categories), y ticks `y`, labels formatted from the ticks.
    fn draw<'a, 'b>(
        &self,
        root: &'a DrawingArea<SVGBackend<'b>, Shift>,
        x: &Ticks,
        y: &Ticks,
    ) -> Result<Chart<'a, 'b>> {
        root.fill(&WHITE).map_err(plot_err)?;
        let title_pt = self.title_pt();
        root.draw(&Text::new(
            self.title.to_string(),
            ((self.width / 2) as i32, 10),
            text_style(title_pt, BLACK, HPos::Center, VPos::Top),
        ))
        .map_err(plot_err)?;
        let title_h = (title_pt / 1.24) as u32 + 20;
        let legend_h = legend_height(&self.legend, self.width);
        if !self.legend.is_empty() {
            let y0 = (self.height() - legend_h) as i32;
            draw_legend(
                root,
                &self.legend,
                (MARGIN + 8) as i32,
                y0,
                legend_width(self.width),
            )?;
        }
        let y_area = (y.widest_label() + 44.0).max(64.0) as u32;
        let mut chart = ChartBuilder::on(root)
            .margin(MARGIN)
            .margin_top(title_h)
            .margin_bottom(legend_h + MARGIN)
            .margin_right(MARGIN + 12)
            .x_label_area_size(self.x_area)
            .y_label_area_size(y_area)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(plot_err)?;
        let label = (FONT, TEXT_PT).into_font();
        let x_label = |v: &f64| x.label(*v);
        let y_label = |v: &f64| y.label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.label_style(label.clone())
            .axis_desc_style(label)
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label);
        if let Some(d) = self.x_desc {
            mesh.x_desc(d);
        }
        if x.marks.is_empty() {
            mesh.disable_x_mesh();
        }
        mesh.draw().map_err(plot_err)?;
        Ok(chart)
    }
}

/// " (log scale)" appended to a log axis's description unless it says so already.
fn describe(y_desc: &str, axis: Axis) -> String {
    let lower = y_desc.to_lowercase();
    if axis.log
        && !["log scale", "log10", "logarithmic"]
            .iter()
            .any(|w| lower.contains(w))
    {
        format!("{y_desc} (log scale)")
    } else {
        y_desc.to_string()
    }
}

/// One bar: its group (x category), its slot within the group, its value and colour.
struct Bar {
    group: usize,
    slot: usize,
    value: f64,
    color: RGBColor,
}

/// Bars over `groups` categories, `slots` bars per group, with value labels from `label`.
#[allow(clippy::too_many_arguments)]
fn bar_chart(
    title: &str,
    y_desc: String,
    width: u32,
    groups: &[&str],
    slots: usize,
    bars: &[Bar],
    y: &Ticks,
    legend: Vec<Entry>,
    label: &dyn Fn(f64) -> String,
) -> Result<Svg> {
    let n = groups.len();
    let plot_w =
        f64::from(width) - 2.0 * f64::from(MARGIN) - 12.0 - (y.widest_label() + 44.0).max(64.0);
    let slot_w = plot_w / n as f64;
    let names: Vec<Vec<String>> = groups
        .iter()
        .map(|g| wrap(g, slot_w - 6.0, TEXT_PT))
        .collect();
    let lines = names.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let frame = Frame {
        title,
        width,
        x_desc: None,
        y_desc,
        x_area: lines * LINE_PX as u32 + 12,
        legend,
    };
    let x = Ticks {
        log: false,
        lo: 0.0,
        hi: n as f64,
        marks: Vec::new(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, frame.height())).into_drawing_area();
        let chart = frame.draw(&root, &x, y)?;
        let inner = 0.8 / slots as f64;
        let x_of = |b: &Bar| b.group as f64 + 0.1 + b.slot as f64 * inner;
        for b in bars {
            let x0 = x_of(b) + inner * 0.04;
            let x1 = x_of(b) + inner * 0.96;
            root.draw(&Rectangle::new(
                [
                    chart.backend_coord(&(x0, y.base())),
                    chart.backend_coord(&(x1, y.pos(b.value))),
                ],
                b.color.filled(),
            ))
            .map_err(plot_err)?;
        }
        let plot_top = chart.backend_coord(&(0.0, y.hi)).1;
        for b in bars {
            let (left, top) = chart.backend_coord(&(x_of(b) + inner * 0.04, y.pos(b.value)));
            let (right, base) = chart.backend_coord(&(x_of(b) + inner * 0.96, y.base()));
            value_label(
                &root,
                &label(b.value),
                (left, right),
                top,
                base,
                plot_top,
                b.color,
            )?;
        }
        let bottom = chart.backend_coord(&(0.0, y.lo)).1 + 8;
        for (i, lines) in names.iter().enumerate() {
            let cx = chart.backend_coord(&(i as f64 + 0.5, y.lo)).0;
            for (l, line) in lines.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (cx, bottom + l as i32 * LINE_PX),
                    text_style(TEXT_PT, BLACK, HPos::Center, VPos::Top),
                ))
                .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// The value of a bar spanning pixels `left..right`, from `base` to `top`: above the bar
/// where it fits under the plot's top, else inside the bar's end (in a colour that reads on
/// the bar's fill); rotated to read upwards when wider than the bar; below the end of a
/// negative bar.
#[allow(clippy::too_many_arguments)]
fn value_label(
    root: &DrawingArea<SVGBackend, Shift>,
    text: &str,
    (left, right): (i32, i32),
    top: i32,
    base: i32,
    plot_top: i32,
    fill: RGBColor,
) -> Result<()> {
    let cx = (left + right) / 2;
    let w = text_width(text, VALUE_PT);
    let h = VALUE_PT / 1.24;
    let bar_w = f64::from(right - left);
    let draw = |pos: (i32, i32), style: TextStyle<'static>| {
        root.draw(&Text::new(text.to_string(), pos, style))
            .map_err(plot_err)
    };
    if top > base {
        return draw(
            (cx, top + 3),
            text_style(VALUE_PT, BLACK, HPos::Center, VPos::Top),
        );
    }
    let above = f64::from(top - plot_top);
    let inside = f64::from(base - top);
    let inner = text_on(fill);
    if w <= bar_w + 2.0 {
        if above >= h + 5.0 || inside < h + 6.0 {
            draw(
                (cx, top - 3),
                text_style(VALUE_PT, BLACK, HPos::Center, VPos::Bottom),
            )
        } else {
            draw(
                (cx, top + 4),
                text_style(VALUE_PT, inner, HPos::Center, VPos::Top),
            )
        }
    } else if above >= w + 6.0 || (inside < w + 6.0 && above >= inside) {
        draw(
            (cx, top - 4),
            text_style(VALUE_PT, BLACK, HPos::Left, VPos::Center)
                .transform(FontTransform::Rotate270),
        )
    } else {
        draw(
            (cx, top + 4),
            text_style(VALUE_PT, inner, HPos::Right, VPos::Center)
                .transform(FontTransform::Rotate270),
        )
    }
}

/// Bars with value labels over named categories, on a value axis that starts at zero (or,
/// on a log axis, at a labelled decade at least three times below the smallest value): `bars` holds `(name, value)`
/// pairs in `axis.unit` (milliseconds for [`Unit::Ms`], bytes for [`Unit::Bytes`],
/// `0..=100` for [`Unit::Percent`]); each bar is coloured by its name ([`color_for`]) and
/// carries its value ([`Unit::format`]); `y_desc` describes the value axis.
///
/// # Errors
///
/// `Error::Other` if `bars` is empty, a value is not finite, not positive on a log axis or
/// outside `0..=100` in percent, or if plotters fails to draw the chart.
pub fn bars(title: &str, y_desc: &str, bars: &[(&str, f64)], axis: Axis) -> Result<Svg> {
    let unit = axis.unit;
    bars_with(title, y_desc, bars, axis, None, &|v| unit.format(v))
}

fn bars_with(
    title: &str,
    y_desc: &str,
    bars: &[(&str, f64)],
    axis: Axis,
    cap: Option<f64>,
    label: &dyn Fn(f64) -> String,
) -> Result<Svg> {
    let values: Vec<f64> = bars.iter().map(|b| b.1).collect();
    check_values(&values, axis, "a bar chart")?;
    let y = Ticks::for_bars(axis, &values, cap)?;
    let names: Vec<&str> = bars.iter().map(|b| b.0).collect();
    let colors = chart_colors(&names);
    let bars: Vec<Bar> = values
        .iter()
        .zip(colors)
        .enumerate()
        .map(|(i, (&value, color))| Bar {
            group: i,
            slot: 0,
            value,
            color,
        })
        .collect();
    bar_chart(
        title,
        describe(y_desc, axis),
        WIDTH,
        &names,
        1,
        &bars,
        &y,
        Vec::new(),
        label,
    )
}

/// Plaintext / quantized / encrypted accuracy, as fractions in `0..=1`, drawn as percentages
/// on a 0–100% axis, each bar labelled with two decimals ("97.37%").
///
/// # Errors
///
/// `Error::Other` if an accuracy is not a fraction in `0..=1`, or if plotters fails to draw
/// the chart.
pub fn accuracy_bars(title: &str, plain: f64, quantized: f64, encrypted: f64) -> Result<Svg> {
    bars_with(
        title,
        "accuracy (%)",
        &[
            ("plaintext", plain * 100.0),
            ("quantized", quantized * 100.0),
            ("encrypted", encrypted * 100.0),
        ],
        Axis::linear(Unit::Percent),
        None,
        &|v| format!("{v:.2}%"),
    )
}

/// Median per-sample latency of each stage and their total, given in milliseconds, on a
/// linear time axis from zero (ticks and values in µs, ms or s).
///
/// # Errors
///
/// `Error::Other` if a time is negative or not finite, or if plotters fails to draw the chart.
pub fn latency_bars(title: &str, encrypt_ms: f64, infer_ms: f64, decrypt_ms: f64) -> Result<Svg> {
    if [encrypt_ms, infer_ms, decrypt_ms].iter().any(|t| *t < 0.0) {
        return Err(bad("latency bars: a time is negative"));
    }
    bars(
        title,
        "median time per sample",
        &[
            ("encrypt (client)", encrypt_ms),
            ("infer (server)", infer_ms),
            ("decrypt (client)", decrypt_ms),
            ("total", encrypt_ms + infer_ms + decrypt_ms),
        ],
        Axis::linear(Unit::Ms),
    )
}

/// Histogram of `samples` in `unit` (24 equal bins; for example per-sample times in
/// milliseconds with [`Unit::Ms`]); the count axis starts at zero, the x axis is labelled
/// in `unit`'s human form, and `x_desc` says what was measured.
///
/// # Errors
///
/// `Error::Other` if `samples` is empty or holds a non-finite value (or, in percent, one
/// outside `0..=100`), or if plotters fails to draw the chart.
pub fn histogram(title: &str, x_desc: &str, samples: &[f64], unit: Unit) -> Result<Svg> {
    check_values(samples, Axis::linear(unit), "a histogram")?;
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut lo, mut hi) = if hi > lo {
        (lo, hi)
    } else {
        let d = (lo.abs() * 0.05).max(1e-6);
        (lo - d, hi + d)
    };
    if unit == Unit::Percent && hi > 100.0 {
        (lo, hi) = (lo - (hi - 100.0), 100.0);
    }
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    if min >= 0.0 && lo < 0.0 {
        (lo, hi) = (0.0, hi - lo);
    }
    let bins = 24usize;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u32; bins];
    for &t in samples {
        counts[(((t - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = f64::from(counts.iter().copied().max().unwrap_or(1));
    let y = Ticks::linear(Unit::Count, 0.0, top * 1.08, 5, true, None);
    let x = Ticks::linear(unit, lo, hi, 6, false, None);
    let frame = Frame {
        title,
        width: WIDTH,
        x_desc: Some(x_desc),
        y_desc: "count".into(),
        x_area: LINE_PX as u32 * 2 + 16,
        legend: Vec::new(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, frame.height())).into_drawing_area();
        let mut chart = frame.draw(&root, &x, &y)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|c| *c.1 > 0)
                    .map(|(i, &c)| {
                        let x0 = lo + i as f64 * width;
                        Rectangle::new(
                            [(x0 + width * 0.04, 0.0), (x0 + width * 0.96, f64::from(c))],
                            HISTOGRAM_COLOR.filled(),
                        )
                    }),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// Lines with markers: one `(name, points)` series each; points are `(x, y)`, x in the
/// units `x_desc` names (a plain linear axis), y in `y.unit` on a linear or log axis that
/// fits the data (within 0–100% in percent). Each series is coloured by its name
/// ([`color_for`]); a series whose colour an earlier one already has (two datasets,
/// "encrypted" both) is dashed, with another marker. A legend below the plot names the
/// series when there are two or more.
///
/// # Errors
///
/// `Error::Other` if there are no points, a coordinate is not finite, or a y value is not
/// positive on a log axis or outside `0..=100` in percent; or if plotters fails to draw the
/// chart.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y: Axis,
) -> Result<Svg> {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    check_values(&ys, y, "a line chart")?;
    check_values(&xs, Axis::linear(Unit::Plain), "a line chart")?;
    let y_ticks = Ticks::for_points(y, &ys)?;
    let (x0, x1) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let pad = if x1 > x0 { (x1 - x0) * 0.04 } else { 0.5 };
    let x_ticks = Ticks::linear(Unit::Plain, x0 - pad, x1 + pad, 8, false, None);
    let names: Vec<&str> = series.iter().map(|s| s.0).collect();
    let colors = chart_colors(&names);
    let kinds: Vec<usize> = (0..series.len())
        .map(|i| colors[..i].iter().filter(|c| **c == colors[i]).count())
        .collect();
    let legend = if series.len() > 1 {
        names
            .iter()
            .zip(&colors)
            .zip(&kinds)
            .map(|((n, c), k)| Entry {
                name: n.to_string(),
                color: *c,
                mark: Mark::Line(*k),
            })
            .collect()
    } else {
        Vec::new()
    };
    let frame = Frame::lines(title, x_desc, describe(y_desc, y), legend);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, frame.height())).into_drawing_area();
        let mut chart = frame.draw(&root, &x_ticks, &y_ticks)?;
        for (((_, pts), &color), &kind) in series.iter().zip(&colors).zip(&kinds) {
            let pts: Vec<(f64, f64)> = pts.iter().map(|&(x, v)| (x, y_ticks.pos(v))).collect();
            let style = color.stroke_width(2);
            if kind == 0 {
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), style))
                    .map_err(plot_err)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))
                    .map_err(plot_err)?;
            }
            for p in &pts {
                draw_marker(&root, chart.backend_coord(p), kind, color)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// A named series of [`spread_lines`]: `(x, mean, spread)` points.
pub type SpreadSeries<'a> = (&'a str, Vec<(f64, f64, f64)>);

/// Lines through means with their spread: each series holds `(x, mean, spread)` points, drawn
/// as a line through the means with a whisker from `mean - spread` to `mean + spread` at each
/// point (a standard deviation over seeds, say), and `references` as horizontal dashed lines
/// across the plot (a plaintext or encrypted baseline). The x axis is linear, or logarithmic
/// when `x.log` (ε from 0.1 to 10, say; then every x must be positive); values in `y.unit`
/// (`0..=100` in percent: whiskers are clipped to it).
///
/// # Errors
///
/// `Error::Other` if there are no points, a value is not finite, an x is not positive on a
/// log axis, a mean is not positive on a log y axis or outside `0..=100` in percent, a spread
/// is negative; or if plotters fails to draw the chart.
pub fn spread_lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[SpreadSeries],
    references: &[(&str, f64)],
    x: Axis,
    y: Axis,
) -> Result<Svg> {
    let points: Vec<(f64, f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if points.iter().any(|p| !(p.2.is_finite() && p.2 >= 0.0)) {
        return Err(bad("a spread must be finite and not negative"));
    }
    let clip = |v: f64| {
        if y.unit == Unit::Percent {
            v.clamp(0.0, 100.0)
        } else {
            v
        }
    };
    let means: Vec<f64> = points.iter().map(|p| p.1).collect();
    check_values(&means, y, "a spread chart")?;
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    check_values(&xs, x, "a spread chart")?;
    let mut ys: Vec<f64> = points
        .iter()
        .flat_map(|p| [clip(p.1 - p.2), clip(p.1 + p.2)])
        .filter(|v| !y.log || *v > 0.0)
        .collect();
    ys.extend(references.iter().map(|r| r.1));
    check_values(&ys, y, "a spread chart")?;
    let y_ticks = Ticks::for_points(y, &ys)?;
    let (x0, x1) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let x_ticks = if x.log {
        Ticks::log(x.unit, x0, x1, 1.0, 1.0)?
    } else {
        let pad = if x1 > x0 { (x1 - x0) * 0.04 } else { 0.5 };
        Ticks::linear(x.unit, x0 - pad, x1 + pad, 8, false, None)
    };
    let names: Vec<&str> = series
        .iter()
        .map(|s| s.0)
        .chain(references.iter().map(|r| r.0))
        .collect();
    let colors = chart_colors(&names);
    let legend = names
        .iter()
        .zip(&colors)
        .enumerate()
        .map(|(i, (n, c))| Entry {
            name: n.to_string(),
            color: *c,
            mark: Mark::Line(if i < series.len() { 0 } else { 1 }),
        })
        .collect();
    let frame = Frame::lines(title, x_desc, describe(y_desc, y), legend);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, frame.height())).into_drawing_area();
        let mut chart = frame.draw(&root, &x_ticks, &y_ticks)?;
        let (left, right) = (x_ticks.lo, x_ticks.hi);
        for ((_, level), color) in references.iter().zip(&colors[series.len()..]) {
            let at = y_ticks.pos(*level);
            chart
                .draw_series(DashedLineSeries::new(
                    [(left, at), (right, at)],
                    8,
                    5,
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?;
        }
        for ((_, pts), &color) in series.iter().zip(&colors) {
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|&(px, m, _)| (x_ticks.pos(px), y_ticks.pos(m)))
                .collect();
            chart
                .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?;
            for &(px, m, spread) in pts {
                let at = x_ticks.pos(px);
                let (lo, hi) = (clip(m - spread), clip(m + spread));
                if spread > 0.0 && (!y.log || lo > 0.0) {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            [(at, y_ticks.pos(lo)), (at, y_ticks.pos(hi))],
                            color.stroke_width(1),
                        )))
                        .map_err(plot_err)?;
                }
                draw_marker(&root, chart.backend_coord(&(at, y_ticks.pos(m))), 0, color)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// Grouped bars: for each group (x category), one bar per series, coloured by the series'
/// name ([`color_for`]), each carrying its value ([`Unit::format`] of `axis.unit`); a
/// missing value leaves a gap. Each series holds one value per group (`groups.len()`), in
/// `axis.unit` (milliseconds, bytes, `0..=100` percent, …). On a linear axis the bars start
/// at zero; on a log axis at a labelled decade at least three times below the smallest
/// value, and the axis says "log
/// scale". The legend sits below the plot.
///
/// # Errors
///
/// `Error::Other` if `groups` or `series` is empty, a series does not have one entry per
/// group, no value is present, a value is not finite (not positive on a log axis, outside
/// `0..=100` in percent), or if plotters fails to draw the chart.
pub fn grouped_bars(
    title: &str,
    y_desc: &str,
    groups: &[&str],
    series: &[(&str, Vec<Option<f64>>)],
    axis: Axis,
) -> Result<Svg> {
    if groups.is_empty() || series.is_empty() || series.iter().any(|s| s.1.len() != groups.len()) {
        return Err(bad(
            "grouped bars need at least one group and series, and one entry per group in each series",
        ));
    }
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().flatten().copied())
        .collect();
    check_values(&values, axis, "grouped bars")?;
    let y = Ticks::for_bars(axis, &values, None)?;
    let names: Vec<&str> = series.iter().map(|s| s.0).collect();
    let colors = chart_colors(&names);
    let mut bars = Vec::new();
    for (slot, ((_, vals), &color)) in series.iter().zip(&colors).enumerate() {
        for (group, v) in vals.iter().enumerate() {
            if let Some(&value) = v.as_ref() {
                bars.push(Bar {
                    group,
                    slot,
                    value,
                    color,
                });
            }
        }
    }
    let legend = names
        .iter()
        .zip(&colors)
        .map(|(n, c)| Entry {
            name: n.to_string(),
            color: *c,
            mark: Mark::Bar,
        })
        .collect();
    let unit = axis.unit;
    bar_chart(
        title,
        describe(y_desc, axis),
        WIDE,
        groups,
        series.len(),
        &bars,
        &y,
        legend,
        &|v| unit.format(v),
    )
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
        let root = root.titled(title, (FONT, 20)).map_err(plot_err)?;
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
            text.draw(&Text::new(caption.clone(), (6, 4), (FONT, 13).into_font()))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(Svg(svg))
}

/// The accuracy chart of a report (0–100%), or its R² chart for regression (a linear axis
/// from zero, or below zero for a negative R², up to at most 1).
///
/// # Errors
///
/// `Error::Other` if a figure is not finite (or an accuracy not in `0..=1`), or if plotters
/// fails to draw the chart.
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
        bars_with(
            &format!("Test R²: {} ({} rows)", report.dataset, report.n_test),
            "R² (1 = perfect)",
            &[
                ("plaintext", r.plain),
                ("quantized", r.quantized),
                ("encrypted", r.encrypted),
            ],
            Axis::linear(Unit::Plain),
            Some(1.0),
            &|v| format!("{v:.4}"),
        )
    }
}

/// The per-stage latency chart of a report (median time per sample, from zero).
///
/// # Errors
///
/// `Error::Other` if a time is negative or not finite, or if plotters fails to draw the chart.
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

/// The latency distribution of a report: a histogram of `per_sample.total_ms` (a time axis
/// in µs, ms or s).
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
        "encrypt + infer + decrypt, per sample",
        &report.per_sample.total_ms,
        Unit::Ms,
    )
}

/// Writes the report's three charts into `dir` (created if missing): `accuracy.svg`,
/// `latency_breakdown.svg` and `latency_distribution.svg`; returns their paths.
///
/// # Errors
///
/// `Error::Io` if `dir` cannot be created or a file cannot be written; `Error::Other` if a
/// chart cannot be drawn (see [`accuracy_chart`], [`latency_chart`] and
/// [`latency_distribution`]).
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
        assert!(lat.as_str().contains("160 µs") && lat.as_str().contains("median time per sample"));
        let hist = histogram("Spread", "time", &[0.1, 0.2, 0.2, 0.3], Unit::Ms).unwrap();
        assert!(hist.as_str().contains("Spread") && hist.as_str().contains("count"));
        assert!(hist.as_str().contains("200 µs"));
        let line = lines(
            "Lines",
            "bits",
            "accuracy",
            &[("a", vec![(3.0, 90.0), (8.0, 99.0)])],
            Axis::linear(Unit::Percent),
        )
        .unwrap();
        assert!(line.as_str().contains("Lines") && line.as_str().contains("100%"));
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
        assert!(histogram("t", "x", &[], Unit::Ms).is_err());
        assert!(histogram("t", "x", &[f64::NAN], Unit::Ms).is_err());
        assert!(lines("t", "x", "y", &[], Axis::linear(Unit::Plain)).is_err());
        assert!(bars("t", "y", &[], Axis::linear(Unit::Plain)).is_err());
        assert!(image_gallery("t", 8, &[(vec![0.0; 3], String::new())], 2).is_err());
        let log = Axis::log(Unit::Ms);
        let lin = Axis::linear(Unit::Ms);
        assert!(grouped_bars("t", "y", &["a"], &[("s", vec![Some(0.0)])], log).is_err());
        assert!(grouped_bars("t", "y", &["a", "b"], &[("s", vec![Some(1.0)])], lin).is_err());
        assert!(grouped_bars("t", "y", &["a"], &[("s", vec![None])], lin).is_err());
        assert!(accuracy_bars("t", 1.2, 0.9, 0.9).is_err());
    }

    #[test]
    fn grouped_bars_draw_every_value_and_the_legend() {
        let svg = grouped_bars(
            "Latency",
            "time per sample",
            &["bc", "digits"],
            &[
                ("fhe-ml", vec![Some(0.2), Some(0.5)]),
                ("other", vec![Some(20.0), None]),
            ],
            Axis::log(Unit::Ms),
        )
        .unwrap();
        for text in [
            "Latency",
            "bc",
            "digits",
            "fhe-ml",
            "other",
            "200 µs",
            "20 ms",
            "log scale",
        ] {
            assert!(svg.as_str().contains(text), "{text}");
        }
    }

    #[test]
    fn units_print_in_human_form() {
        assert_eq!(Unit::Ms.format(0.16), "160 µs");
        assert_eq!(Unit::Ms.format(12.34), "12.3 ms");
        assert_eq!(Unit::Ms.format(2500.0), "2.5 s");
        assert_eq!(Unit::Ms.format(0.9996), "1 ms");
        assert_eq!(Unit::Bytes.format(204.0), "204 B");
        assert_eq!(Unit::Bytes.format(4096.0), "4 KiB");
        assert_eq!(Unit::Bytes.format(28.8 * MIB), "28.8 MiB");
        assert_eq!(Unit::Bytes.format(1.2 * GIB), "1.2 GiB");
        assert_eq!(Unit::Percent.format(96.53), "96.5%");
        assert_eq!(Unit::Count.format(1500.0), "1500");
        assert_eq!(Unit::Count.format(12_345.0), "12.3k");
        assert_eq!(Unit::Plain.format(0.001_234), "0.00123");
        assert_eq!(superscript(-12), "⁻¹²");
    }

    #[test]
    fn log_ticks_are_decades_in_human_units() {
        let t = Ticks::log(Unit::Bytes, 204.0, 18.0 * MIB, 1.5, 1.8).unwrap();
        let labels: Vec<&str> = t.marks.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(
            labels,
            ["100 B", "1 KiB", "10 KiB", "100 KiB", "1 MiB", "10 MiB", "100 MiB"]
        );
        let t = Ticks::log(Unit::Ms, 0.2, 3000.0, 1.5, 1.8).unwrap();
        let labels: Vec<&str> = t.marks.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(labels, ["100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"]);
        // Less than two decades: 1-2-5 steps.
        let t = Ticks::log(Unit::Count, 3.0, 7.0, 1.0, 1.0).unwrap();
        let labels: Vec<&str> = t.marks.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(labels, ["1", "2", "5", "10"]);
        let t = Ticks::log(Unit::Count, 1.0, 1e9, 1.0, 1.0).unwrap();
        assert!(t.marks.len() <= 12 && t.marks.iter().any(|m| m.1 == "10⁴"));
    }

    #[test]
    fn linear_ticks_start_at_zero_and_stay_within_percent() {
        let t = Ticks::for_bars(Axis::linear(Unit::Percent), &[96.5, 97.4], None).unwrap();
        assert_eq!((t.lo, t.hi), (0.0, 100.0));
        assert_eq!(t.marks.first().unwrap().1, "0%");
        assert_eq!(t.marks.last().unwrap().1, "100%");
        let t = Ticks::for_bars(Axis::linear(Unit::Ms), &[0.07, 0.16], None).unwrap();
        assert_eq!(t.lo, 0.0);
        assert!(
            t.marks.iter().all(|m| m.1.ends_with(" µs")),
            "{:?}",
            t.marks
        );
        let t = Ticks::for_bars(Axis::linear(Unit::Bytes), &[3000.0, 9000.0], None).unwrap();
        assert!(
            t.marks.iter().all(|m| m.1.ends_with(" KiB")),
            "{:?}",
            t.marks
        );
    }

    #[test]
    fn colours_follow_the_table() {
        assert_eq!(color_for("encrypted"), color_for("fhe-ml"));
        assert_eq!(color_for("Concrete ML"), color_for("concrete-ml"));
        assert_ne!(color_for("plaintext"), color_for("encrypted"));
        assert_ne!(
            color_for("label (sanitized)"),
            color_for("top-3 (sanitized)")
        );
        assert_eq!(color_for("total"), color_for("Total"));
        let c = chart_colors(&["a", "b", "c", "d", "e", "f"]);
        for i in 0..c.len() {
            for j in 0..i {
                assert_ne!(c[i], c[j], "fallback colours repeat in one chart");
            }
        }
    }
}
