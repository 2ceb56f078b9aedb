//! Charts (issue 21, item 4): every public chart function rendered to SVG, and the SVG text
//! parsed to check what a reader sees: bars from zero, percent axes within 0–100%, log axes
//! labelled in human units (never a raw 100000000000), titles and axis descriptions, legends
//! at least 13 px, the same colour for the same name in different charts, and bad input
//! refused with an error instead of a panic. With `FHE_ML_CHARTS_DIR=DIR` set, the charts the
//! tests draw are also saved there as SVG, to look at.

use fhe_ml::eval::{EvalConfig, ModelKind, Source};
use fhe_ml::plots::{self, color_for, Axis, Svg, Unit};

/// A `<text>` element of a chart.
#[derive(Debug, Clone)]
struct Text {
    y: f64,
    anchor: String,
    rotated: bool,
    size: f64,
    content: String,
}

/// A `<rect>` element of a chart.
#[derive(Debug, Clone)]
struct Rect {
    y: f64,
    h: f64,
    fill: String,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn texts(svg: &Svg) -> Vec<Text> {
    svg.as_str()
        .split("<text")
        .skip(1)
        .map(|chunk| {
            let open = &chunk[..chunk.find('>').unwrap()];
            let body = &chunk[open.len() + 1..chunk.find("</text>").unwrap()];
            Text {
                y: num(open, "y"),
                anchor: attr(open, "text-anchor").unwrap_or_default(),
                rotated: open.contains("transform="),
                size: num(open, "font-size"),
                content: unescape(body.trim()),
            }
        })
        .collect()
}

fn rects(svg: &Svg) -> Vec<Rect> {
    svg.as_str()
        .split("<rect")
        .skip(1)
        .map(|chunk| {
            let tag = &chunk[..chunk.find("/>").unwrap()];
            Rect {
                y: num(tag, "y"),
                h: num(tag, "height"),
                fill: attr(tag, "fill").unwrap_or_default(),
            }
        })
        .collect()
}

/// The y axis's tick labels, bottom first: right-aligned, unrotated text.
fn y_ticks(svg: &Svg) -> Vec<Text> {
    let mut ticks: Vec<Text> = texts(svg)
        .into_iter()
        .filter(|t| t.anchor == "end" && !t.rotated)
        .collect();
    ticks.sort_by(|a, b| b.y.total_cmp(&a.y));
    assert!(ticks.len() >= 2, "fewer than two y ticks: {ticks:?}");
    ticks
}

/// The number a tick label starts with ("0", "2.5", "100"; "10⁴" reads as 10).
fn leading_number(label: &str) -> f64 {
    let n: String = label
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    n.parse()
        .unwrap_or_else(|_| panic!("label {label:?} has no number"))
}

fn hex(name: &str) -> String {
    let c = color_for(name);
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn has_text(svg: &Svg, content: &str) -> bool {
    texts(svg).iter().any(|t| t.content == content)
}

/// Bars (filled, not white, above the x axis at pixel `axis_y`) all end on the axis.
fn assert_bars_start_at(svg: &Svg, axis_y: f64) {
    let bars: Vec<Rect> = rects(svg)
        .into_iter()
        .filter(|r| r.fill != "#FFFFFF" && r.fill != "none" && r.h > 0.0)
        .filter(|r| r.y < axis_y)
        .collect();
    assert!(!bars.is_empty(), "no bars");
    for b in &bars {
        assert!(
            (b.y + b.h - axis_y).abs() <= 1.0,
            "bar {b:?} does not start at the axis (y = {axis_y})"
        );
    }
}

/// The y axis starts at a "0" tick, on which every bar stands.
fn assert_zero_based(svg: &Svg) {
    let ticks = y_ticks(svg);
    let bottom = &ticks[0];
    assert_eq!(
        leading_number(&bottom.content),
        0.0,
        "the y axis starts at {:?}, not zero",
        bottom.content
    );
    assert_bars_start_at(svg, bottom.y);
}

/// No tick label of a percent axis goes past 100% or below 0%.
fn assert_percent_axis(svg: &Svg) {
    let ticks = y_ticks(svg);
    for t in &ticks {
        assert!(
            t.content.ends_with('%'),
            "tick {:?} is not in percent",
            t.content
        );
        let v = leading_number(&t.content);
        assert!(
            (0.0..=100.0).contains(&v),
            "tick {:?} outside 0–100%",
            t.content
        );
    }
}

/// No text of the chart holds a run of more than six digits (a raw 100000000000).
fn assert_no_raw_numbers(svg: &Svg) {
    for t in texts(svg) {
        let mut run = 0;
        for c in t.content.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            assert!(run <= 6, "raw number in {:?}", t.content);
        }
    }
}

/// Every text is at least 12.5 px; legend entries and tick labels at least 13 px.
fn assert_readable(svg: &Svg) {
    for t in texts(svg) {
        assert!(t.size >= 12.5, "text {:?} is {} px", t.content, t.size);
        if (t.anchor == "start" || t.anchor == "end") && !t.rotated {
            assert!(
                t.size >= 13.0,
                "legend or tick {:?} is {} px",
                t.content,
                t.size
            );
        }
    }
}

/// Saves `svg` as `$FHE_ML_CHARTS_DIR/NAME.svg` when that variable is set, to look at the charts
/// the tests draw.
fn keep(svg: &Svg, name: &str) {
    if let Some(dir) = std::env::var_os("FHE_ML_CHARTS_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        svg.save(dir.join(format!("{name}.svg"))).unwrap();
    }
}

fn fills(svg: &Svg) -> Vec<String> {
    rects(svg).into_iter().map(|r| r.fill).collect()
}

#[test]
fn accuracy_bars_start_at_zero_and_stop_at_100_percent() {
    let svg = plots::accuracy_bars("Digits: test accuracy", 0.9649, 0.9737, 0.9737).unwrap();
    keep(&svg, "accuracy");
    assert!(has_text(&svg, "Digits: test accuracy"));
    assert!(has_text(&svg, "accuracy (%)"));
    assert_zero_based(&svg);
    assert_percent_axis(&svg);
    assert_eq!(y_ticks(&svg).last().unwrap().content, "100%");
    for v in ["96.49%", "97.37%"] {
        assert!(has_text(&svg, v), "value label {v} missing");
    }
    // The three bars in the three colours of the table.
    for name in ["plaintext", "quantized", "encrypted"] {
        assert!(
            fills(&svg).contains(&hex(name)),
            "{name} bar not in its colour"
        );
    }
    assert_readable(&svg);
}

#[test]
fn latency_bars_start_at_zero_in_human_time_units() {
    let svg = plots::latency_bars("Per-sample latency", 0.07, 0.08, 0.01).unwrap();
    keep(&svg, "latency");
    assert_zero_based(&svg);
    let ticks = y_ticks(&svg);
    assert!(
        ticks.iter().all(|t| t.content.ends_with(" µs")),
        "ticks {:?} not in µs",
        ticks.iter().map(|t| &t.content).collect::<Vec<_>>()
    );
    for v in [
        "70 µs",
        "80 µs",
        "10 µs",
        "160 µs",
        "total",
        "infer (server)",
    ] {
        assert!(has_text(&svg, v), "{v} missing");
    }
    assert!(fills(&svg).contains(&hex("infer (server)")));
    assert_readable(&svg);

    let slow = plots::latency_bars("Slow", 900.0, 2100.0, 3.0).unwrap();
    assert_zero_based(&slow);
    assert!(y_ticks(&slow).iter().any(|t| t.content == "1 s"));
    assert!(has_text(&slow, "3 s"));
}

#[test]
fn bars_on_a_log_axis_print_bytes_in_binary_units() {
    let svg = plots::bars(
        "What crosses the wire",
        "bytes",
        &[
            ("client spec", 1_450.0),
            ("logistic: input", 204.0),
            ("MLP: input", 16_400.0),
            ("evaluation key (once)", 30_198_000.0),
        ],
        Axis::log(Unit::Bytes),
    )
    .unwrap();
    keep(&svg, "wire_bytes");
    let ticks: Vec<String> = y_ticks(&svg).into_iter().map(|t| t.content).collect();
    for label in ["1 KiB", "10 KiB", "1 MiB", "10 MiB"] {
        assert!(
            ticks.contains(&label.to_string()),
            "{label} not in {ticks:?}"
        );
    }
    assert!(has_text(&svg, "bytes (log scale)"));
    assert!(has_text(&svg, "28.8 MiB") && has_text(&svg, "204 B"));
    assert_no_raw_numbers(&svg);
    // Bars stand on the bottom of the log axis, a labelled decade.
    let bottom = &y_ticks(&svg)[0];
    assert_eq!(bottom.content, "10 B");
    assert_bars_start_at(&svg, bottom.y);
    assert_readable(&svg);
}

#[test]
fn plain_bars_start_at_zero_and_refuse_fractions_as_percent() {
    let svg = plots::bars(
        "Round trips",
        "median per request",
        &[("logistic, one row", 1.8), ("MLP, one digit", 410.0)],
        Axis::linear(Unit::Ms),
    )
    .unwrap();
    keep(&svg, "plain_bars");
    assert_zero_based(&svg);
    assert!(has_text(&svg, "410 ms") && has_text(&svg, "1.8 ms"));
    assert!(plots::bars("t", "y", &[("a", 120.0)], Axis::linear(Unit::Percent)).is_err());
}

#[test]
fn grouped_bars_on_a_log_time_axis() {
    let workloads = [
        "bc-logistic",
        "digits-logistic",
        "digits-mlp",
        "bc-tree",
        "bc-forest",
    ];
    let svg = plots::grouped_bars(
        "Encrypted inference latency per sample (median)",
        "time per sample",
        &workloads,
        &[
            (
                "fhe-ml",
                vec![Some(0.21), Some(0.9), Some(380.0), Some(95.0), Some(610.0)],
            ),
            (
                "concrete-ml",
                vec![
                    Some(13.0),
                    Some(27.0),
                    Some(7200.0),
                    Some(2800.0),
                    Some(13_000.0),
                ],
            ),
            (
                "tenseal",
                vec![Some(22.0), Some(260.0), Some(530.0), None, None],
            ),
        ],
        Axis::log(Unit::Ms),
    )
    .unwrap();
    keep(&svg, "comparison_latency");
    let ticks: Vec<String> = y_ticks(&svg).into_iter().map(|t| t.content).collect();
    for label in ["1 ms", "10 ms", "100 ms", "1 s", "10 s"] {
        assert!(
            ticks.contains(&label.to_string()),
            "{label} not in {ticks:?}"
        );
    }
    assert!(has_text(&svg, "time per sample (log scale)"));
    assert_no_raw_numbers(&svg);
    for w in workloads {
        assert!(has_text(&svg, w), "group {w} missing");
    }
    for (system, value) in [
        ("fhe-ml", "210 µs"),
        ("concrete-ml", "13 s"),
        ("tenseal", "530 ms"),
    ] {
        assert!(has_text(&svg, system), "legend entry {system} missing");
        assert!(has_text(&svg, value), "value {value} missing");
        assert!(
            fills(&svg).contains(&hex(system)),
            "{system} not in its colour"
        );
    }
    // The legend sits below the plot: under the lowest tick.
    let axis_y = y_ticks(&svg)[0].y;
    for system in ["fhe-ml", "concrete-ml", "tenseal"] {
        let entry = texts(&svg)
            .into_iter()
            .find(|t| t.content == system && t.anchor == "start")
            .unwrap();
        assert!(entry.y > axis_y, "legend entry {system} over the plot");
    }
    assert_readable(&svg);
}

#[test]
fn grouped_bars_in_percent_stay_within_100() {
    let svg = plots::grouped_bars(
        "Encrypted accuracy on the same test rows",
        "accuracy",
        &["bc-logistic", "digits-logistic"],
        &[
            ("fhe-ml", vec![Some(98.2), Some(93.9)]),
            ("Concrete ML", vec![Some(98.2), Some(96.1)]),
            ("TenSEAL", vec![Some(97.4), Some(100.0)]),
        ],
        Axis::linear(Unit::Percent),
    )
    .unwrap();
    keep(&svg, "comparison_accuracy");
    assert_zero_based(&svg);
    assert_percent_axis(&svg);
    assert_eq!(y_ticks(&svg).last().unwrap().content, "100%");
    assert!(has_text(&svg, "93.9%") && has_text(&svg, "100.0%"));
    assert!(fills(&svg).contains(&hex("concrete-ml")));
}

#[test]
fn grouped_bars_in_bytes_on_a_log_axis() {
    let svg = plots::grouped_bars(
        "Evaluation keys a client sends",
        "bytes",
        &["digits-mlp", "bc-tree"],
        &[
            ("fhe-ml", vec![Some(30_198_000.0), Some(12_000_000.0)]),
            (
                "concrete-ml",
                vec![Some(231_000_000.0), Some(100_000_000_000.0)],
            ),
        ],
        Axis::log(Unit::Bytes),
    )
    .unwrap();
    keep(&svg, "grouped_bytes");
    let ticks: Vec<String> = y_ticks(&svg).into_iter().map(|t| t.content).collect();
    assert!(ticks.iter().any(|t| t.ends_with("GiB")), "{ticks:?}");
    assert!(ticks.contains(&"10 MiB".to_string()), "{ticks:?}");
    assert!(has_text(&svg, "93.1 GiB"));
    assert_no_raw_numbers(&svg);
}

#[test]
fn histogram_counts_from_zero_on_a_time_axis() {
    let samples: Vec<f64> = (0..200).map(|i| 0.15 + f64::from(i % 17) * 0.004).collect();
    let svg = plots::histogram(
        "Per-sample latency distribution",
        "encrypt + infer + decrypt",
        &samples,
        Unit::Ms,
    )
    .unwrap();
    keep(&svg, "histogram");
    assert!(has_text(&svg, "Per-sample latency distribution"));
    assert!(has_text(&svg, "count") && has_text(&svg, "encrypt + infer + decrypt"));
    assert_zero_based(&svg);
    // The x axis reads in µs, not in fractions of a millisecond.
    let x_ticks: Vec<Text> = texts(&svg)
        .into_iter()
        .filter(|t| t.anchor == "middle" && t.content.ends_with(" µs"))
        .collect();
    assert!(x_ticks.len() >= 3, "x ticks {x_ticks:?}");
    assert_readable(&svg);

    let agreement = [99.2, 99.7, 100.0, 100.0, 99.4];
    let svg = plots::histogram("Agreement", "agreement", &agreement, Unit::Percent).unwrap();
    keep(&svg, "agreement_histogram");
    for t in texts(&svg).iter().filter(|t| t.content.ends_with('%')) {
        assert!(leading_number(&t.content) <= 100.0, "{:?}", t.content);
    }
    let all_equal = plots::histogram("Agreement", "agreement", &[100.0; 4], Unit::Percent).unwrap();
    for t in texts(&all_equal)
        .iter()
        .filter(|t| t.content.ends_with('%'))
    {
        assert!(leading_number(&t.content) <= 100.0, "{:?}", t.content);
    }
}

#[test]
fn lines_keep_colours_and_percent_range() {
    let svg = plots::lines(
        "Test accuracy against quantization width",
        "bits (inputs and weights)",
        "test accuracy",
        &[
            (
                "breast cancer, encrypted",
                vec![(2.0, 88.0), (4.0, 96.5), (8.0, 99.1)],
            ),
            (
                "breast cancer, plaintext",
                vec![(2.0, 99.1), (4.0, 99.1), (8.0, 99.1)],
            ),
            (
                "digits, encrypted",
                vec![(2.0, 70.0), (4.0, 91.0), (8.0, 94.0)],
            ),
        ],
        Axis::linear(Unit::Percent),
    )
    .unwrap();
    keep(&svg, "lines_accuracy");
    assert!(has_text(&svg, "Test accuracy against quantization width"));
    assert!(has_text(&svg, "bits (inputs and weights)") && has_text(&svg, "test accuracy"));
    assert_percent_axis(&svg);
    // Lines in the colours of their mode: encrypted orange, plaintext blue.
    for name in ["encrypted", "plaintext"] {
        assert!(
            svg.as_str().contains(&format!("stroke=\"{}\"", hex(name))),
            "no {name} line"
        );
    }
    for name in ["breast cancer, encrypted", "digits, encrypted"] {
        assert!(
            texts(&svg)
                .iter()
                .any(|t| t.content == name && t.anchor == "start"),
            "legend entry {name} missing"
        );
    }
    assert_readable(&svg);
}

/// DP accuracy against ε: a log x axis labelled at 0.1, 1 and 10, whiskers of the spread
/// clipped to 100%, dashed reference lines, and every series and reference in the legend.
#[test]
fn spread_lines_on_a_log_x_axis_with_references() {
    let svg = plots::spread_lines(
        "DP accuracy against ε",
        "privacy budget ε (log scale)",
        "test accuracy",
        &[(
            "DP",
            vec![(0.1, 62.0, 9.0), (1.0, 80.0, 4.0), (10.0, 96.0, 6.0)],
        )],
        &[("plaintext", 97.4), ("FHE: fhe-ml, encrypted", 97.4)],
        Axis::log(Unit::Plain),
        Axis::linear(Unit::Percent),
    )
    .unwrap();
    keep(&svg, "spread_lines_dp");
    assert!(has_text(&svg, "DP accuracy against ε"));
    assert!(has_text(&svg, "privacy budget ε (log scale)"));
    for tick in ["0.1", "1", "10"] {
        assert!(has_text(&svg, tick), "x tick {tick} missing");
    }
    assert_percent_axis(&svg);
    for name in ["DP", "plaintext", "FHE: fhe-ml, encrypted"] {
        assert!(
            texts(&svg)
                .iter()
                .any(|t| t.content == name && t.anchor == "start"),
            "legend entry {name} missing"
        );
    }
    // Three whiskers, one per point: vertical two-point polylines in the series' colour.
    let stroke = format!("stroke=\"{}\"", hex("DP"));
    let whiskers = svg
        .as_str()
        .split("<polyline")
        .skip(1)
        .filter(|p| p.split('>').next().is_some_and(|tag| tag.contains(&stroke)))
        .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
        .filter(|pts| {
            let xy: Vec<&str> = pts.split_whitespace().collect();
            xy.len() == 2 && xy[0].split(',').next() == xy[1].split(',').next()
        })
        .count();
    assert_eq!(whiskers, 3);
    assert_readable(&svg);
    let lin = Axis::linear(Unit::Percent);
    let log = Axis::log(Unit::Plain);
    let one = |x: f64, m: f64, sd: f64| vec![("s", vec![(x, m, sd)])];
    assert!(plots::spread_lines("t", "x", "y", &[], &[], lin, lin).is_err());
    assert!(plots::spread_lines("t", "x", "y", &one(0.0, 50.0, 1.0), &[], log, lin).is_err());
    assert!(plots::spread_lines("t", "x", "y", &one(1.0, 50.0, -1.0), &[], lin, lin).is_err());
    assert!(plots::spread_lines("t", "x", "y", &one(1.0, 150.0, 1.0), &[], lin, lin).is_err());
    assert!(plots::spread_lines("t", "x", "y", &one(1.0, f64::NAN, 1.0), &[], lin, lin).is_err());
}

#[test]
fn lines_on_a_log_byte_axis() {
    let svg = plots::lines(
        "Ciphertext sizes",
        "bits",
        "bytes per sample",
        &[
            ("digits, input", vec![(4.0, 2_100.0), (8.0, 4_200.0)]),
            ("digits, output", vec![(4.0, 180_000.0), (8.0, 350_000.0)]),
        ],
        Axis::log(Unit::Bytes),
    )
    .unwrap();
    keep(&svg, "lines_bytes");
    let ticks: Vec<String> = y_ticks(&svg).into_iter().map(|t| t.content).collect();
    assert!(
        ticks.contains(&"10 KiB".to_string()) && ticks.contains(&"100 KiB".to_string()),
        "{ticks:?}"
    );
    assert!(has_text(&svg, "bytes per sample (log scale)"));
    assert_no_raw_numbers(&svg);
}

#[test]
fn the_same_name_has_the_same_colour_in_every_chart() {
    let encrypted = hex("encrypted");
    let accuracy = plots::accuracy_bars("a", 0.9, 0.9, 0.9).unwrap();
    let grouped = plots::grouped_bars(
        "b",
        "accuracy",
        &["x"],
        &[
            ("float", vec![Some(90.0)]),
            ("fhe-ml encrypted (= clear twin)", vec![Some(89.0)]),
        ],
        Axis::linear(Unit::Percent),
    )
    .unwrap();
    let line = plots::lines(
        "c",
        "depth",
        "accuracy",
        &[
            ("plaintext", vec![(1.0, 90.0), (2.0, 92.0)]),
            ("encrypted", vec![(1.0, 89.0), (2.0, 91.0)]),
        ],
        Axis::linear(Unit::Percent),
    )
    .unwrap();
    assert!(fills(&accuracy).contains(&encrypted));
    assert!(fills(&grouped).contains(&encrypted));
    assert!(line.as_str().contains(&format!("stroke=\"{encrypted}\"")));
    assert!(
        fills(&accuracy).contains(&hex("plaintext")) && fills(&grouped).contains(&hex("float"))
    );
    assert_eq!(hex("plaintext"), hex("float"));
    // Systems and modes are told apart.
    let distinct = [
        "plaintext",
        "quantized",
        "encrypted",
        "Concrete ML",
        "TenSEAL",
        "scores",
        "label",
        "top-3",
        "total",
    ];
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[..i] {
            assert_ne!(hex(a), hex(b), "{a} and {b} share a colour");
        }
    }
    // Names outside the table keep their colour too, and differ within a chart.
    let two = plots::lines(
        "d",
        "x",
        "y",
        &[
            ("one tree, by depth", vec![(1.0, 1.0)]),
            ("forest, by trees", vec![(1.0, 2.0)]),
        ],
        Axis::linear(Unit::Count),
    )
    .unwrap();
    assert!(two.as_str().contains(&hex("one tree, by depth")));
    let series_strokes: std::collections::BTreeSet<&str> = two
        .as_str()
        .split("stroke=\"")
        .skip(1)
        .filter_map(|rest| rest.get(..7))
        .filter(|c| {
            let rgb: Vec<u8> = (0..3)
                .map(|i| u8::from_str_radix(&c[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0))
                .collect();
            // Greys (axes, mesh) are not series colours.
            !(rgb[0] == rgb[1] && rgb[1] == rgb[2])
        })
        .collect();
    assert_eq!(
        series_strokes.len(),
        2,
        "two series, two colours: {series_strokes:?}"
    );
}

#[test]
fn report_charts_are_drawn_from_a_real_run() {
    let mut config = EvalConfig::new(Source::BuiltinBreastCancer, ModelKind::Logistic);
    config.limit = Some(12);
    let report = fhe_ml::eval::run(&config).unwrap();
    let accuracy = plots::accuracy_chart(&report).unwrap();
    assert_zero_based(&accuracy);
    assert_percent_axis(&accuracy);
    let latency = plots::latency_chart(&report).unwrap();
    assert_zero_based(&latency);
    assert_no_raw_numbers(&latency);
    let distribution = plots::latency_distribution(&report).unwrap();
    assert!(has_text(&distribution, "count"));
    let dir = std::env::temp_dir().join(format!("fhe-ml-charts-{}", std::process::id()));
    let paths = plots::write_charts(&report, &dir).unwrap();
    assert_eq!(paths.len(), 3);
    for p in &paths {
        assert!(std::fs::read_to_string(p).unwrap().starts_with("<svg"));
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let mut config = EvalConfig::new(Source::File("data/diabetes.csv".into()), ModelKind::Linear);
    config.limit = Some(8);
    let report = fhe_ml::eval::run(&config).unwrap();
    let r2 = plots::accuracy_chart(&report).unwrap();
    assert!(has_text(&r2, "R² (1 = perfect)"));
    let ticks = y_ticks(&r2);
    assert!(
        ticks.iter().all(|t| leading_number(&t.content) <= 1.0),
        "R² axis past 1"
    );
    assert!(
        ticks.iter().any(|t| leading_number(&t.content) == 0.0),
        "R² axis without 0"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let lin = Axis::linear(Unit::Ms);
    let log = Axis::log(Unit::Bytes);
    assert!(plots::bars("t", "y", &[], lin).is_err());
    assert!(plots::bars("t", "y", &[("a", f64::NAN)], lin).is_err());
    assert!(plots::bars("t", "y", &[("a", f64::INFINITY)], lin).is_err());
    assert!(plots::bars("t", "y", &[("a", -3.0)], log).is_err());
    assert!(plots::bars("t", "y", &[("a", 0.0)], log).is_err());
    assert!(plots::accuracy_bars("t", f64::NAN, 0.9, 0.9).is_err());
    assert!(plots::accuracy_bars("t", 97.0, 0.9, 0.9).is_err());
    assert!(plots::latency_bars("t", -1.0, 0.1, 0.1).is_err());
    assert!(plots::histogram("t", "x", &[], Unit::Ms).is_err());
    assert!(plots::histogram("t", "x", &[1.0, f64::NAN], Unit::Ms).is_err());
    assert!(plots::lines("t", "x", "y", &[], lin).is_err());
    assert!(plots::lines("t", "x", "y", &[("a", vec![])], lin).is_err());
    assert!(plots::lines("t", "x", "y", &[("a", vec![(f64::NAN, 1.0)])], lin).is_err());
    assert!(plots::lines("t", "x", "y", &[("a", vec![(1.0, -1.0)])], log).is_err());
    assert!(plots::grouped_bars("t", "y", &[], &[("s", vec![])], lin).is_err());
    assert!(plots::grouped_bars("t", "y", &["a"], &[], lin).is_err());
    assert!(plots::grouped_bars("t", "y", &["a"], &[("s", vec![None])], lin).is_err());
    assert!(plots::grouped_bars("t", "y", &["a"], &[("s", vec![Some(-1.0)])], log).is_err());
    assert!(plots::grouped_bars("t", "y", &["a"], &[("s", vec![Some(f64::NAN)])], lin).is_err());
    assert!(plots::image_gallery("t", 8, &[], 2).is_err());
    assert!(plots::image_gallery("t", 2, &[(vec![0.0; 4], String::new())], 0).is_err());
    // Degenerate but valid input still draws.
    assert!(plots::bars("t", "y", &[("a", 0.0)], lin).is_ok());
    assert!(plots::histogram("t", "x", &[0.0], Unit::Ms).is_ok());
    assert!(plots::lines("t", "x", "y", &[("a", vec![(1.0, 5.0)])], log).is_ok());
}
