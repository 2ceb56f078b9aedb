//! Tables as users bring them (issue 13): class order, constant columns, glitch values,
//! column names and order, categorical columns, file names, CSV dialects. Each case runs
//! through the library and through the CLI where it came from, and checks the right value.

mod common;

use std::path::{Path, PathBuf};

use common::{fhe_ml, fhe_ml_ok};
use fhe_ml::compile;
use fhe_ml::compiler::{compile_forest, compile_mlp};
use fhe_ml::data::{self, CsvOptions, Record, Split};
use fhe_ml::fhe::OutputMode;
use fhe_ml::program::Prediction;
use fhe_ml::quant::Quantization;
use fhe_ml::train::{self, mlp::MlpConfig, trees::ForestConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The one-line error of a failing CLI call.
fn fhe_ml_err(args: &[&str]) -> String {
    let out = fhe_ml(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_slice(&fhe_ml_ok(&all).stdout).expect("eval --json prints JSON")
}

/// A fresh folder for one test's files.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fhe-ml-data-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Two informative features, `n0` rows of class `labels.0` and `n1` of class `labels.1`,
/// shuffled (seeded): the table of case 1.
fn two_class_rows(n0: usize, n1: usize, seed: u64) -> Vec<(f64, f64, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<(f64, f64, usize)> = (0..n0 + n1)
        .map(|i| {
            let y = usize::from(i >= n0);
            let g = |rng: &mut ChaCha8Rng| rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0);
            (1.5 * y as f64 + g(&mut rng), -(y as f64) + g(&mut rng), y)
        })
        .collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.gen_range(0..=i));
    }
    rows
}

fn csv_of(rows: &[(f64, f64, usize)], labels: [i64; 2]) -> String {
    let mut s = String::from("x1,x2,target\n");
    for (a, b, y) in rows {
        s += &format!("{a:.5},{b:.5},{}\n", labels[*y]);
    }
    s
}

/// The split with every training and test label `c` replaced by `1 - c` (same rows).
fn mirrored(split: &Split<usize>) -> Split<usize> {
    let mut m = split.clone();
    let flip = |d: &linfa::Dataset<f64, usize, ndarray::Ix1>| {
        linfa::Dataset::new(d.records().clone(), d.targets().mapv(|c| 1 - c))
    };
    m.train = flip(&split.train);
    m.test = flip(&split.test);
    m
}

/// Case 1: linfa 0.8 calls the larger class positive; any class order must compile, and the
/// same rows with labels swapped give the mirrored model: each label swapped, probabilities
/// mirrored, in scores and label modes, encrypted equal to the clear twin.
#[test]
fn binary_logistic_works_for_either_class_order_and_mirrors() {
    let rows = two_class_rows(140, 60, 1);
    let table = data::parse_csv_str(&csv_of(&rows, [0, 1]), "imbalanced").unwrap();
    let split = table.split(0.2, 42).unwrap();
    let swapped = mirrored(&split);
    let q = Quantization::default();
    let a = compile(&train::fit_logistic(&split).unwrap(), &split, q).unwrap();
    let b = compile(&train::fit_logistic(&swapped).unwrap(), &swapped, q).unwrap();
    let test = split.test_rows();
    let mut hits = 0;
    for (row, truth) in test.iter().zip(split.test_targets()) {
        let (pa, pb) = (
            a.predict_simulated(row).unwrap(),
            b.predict_simulated(row).unwrap(),
        );
        let (ia, ib) = (pa.class_index().unwrap(), pb.class_index().unwrap());
        assert_eq!(ia, 1 - ib, "labels mirror on {row:?}");
        let (
            Prediction::Class {
                probabilities: p, ..
            },
            Prediction::Class {
                probabilities: r, ..
            },
        ) = (&pa, &pb)
        else {
            panic!("classifiers predict classes")
        };
        assert!(
            (p[1] - r[0]).abs() < 0.02,
            "probabilities mirror: {p:?} {r:?}"
        );
        hits += usize::from(ia == truth);
    }
    assert!(
        hits * 10 >= test.len() * 7,
        "{hits} of {} right",
        test.len()
    );
    // Encrypted equals the clear twin, in scores mode and (a few rows) in label mode.
    for (model, rows) in [(a.clone(), &test[..]), (b.clone(), &test[..])] {
        let (client, server) = model.keygen().unwrap();
        for row in rows {
            let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
            assert_eq!(
                client.decrypt_scores(&out).unwrap(),
                model.simulate(row).unwrap()
            );
        }
    }
    for model in [a, b] {
        let labelled = model.with_output(OutputMode::Label).unwrap();
        let (client, server) = labelled.keygen().unwrap();
        for row in &test[..3] {
            let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
            assert_eq!(
                client.decrypt(&out).unwrap().class_index(),
                labelled.predict_simulated(row).unwrap().class_index()
            );
        }
    }
}

/// Case 1, other families: the MLP, a tree and a forest on the same imbalanced table, in
/// scores and label modes, compile and mirror their labels when the labels are swapped.
#[test]
fn every_classifier_family_takes_either_class_order() {
    let rows = two_class_rows(140, 60, 2);
    let table = data::parse_csv_str(&csv_of(&rows, [0, 1]), "imbalanced").unwrap();
    let split = table.split(0.2, 42).unwrap();
    let swapped = mirrored(&split);
    let test = split.test_rows();
    let mlp_config = MlpConfig {
        epochs: 40,
        ..MlpConfig::default()
    };
    for s in [&split, &swapped] {
        let mlp = compile_mlp(&train::mlp::fit_mlp(s, &mlp_config).unwrap(), s).unwrap();
        let tree = compile_forest(
            &train::trees::fit_forest(s, &ForestConfig::default()).unwrap(),
            s,
        )
        .unwrap();
        let forest = compile_forest(
            &train::trees::fit_forest(s, &ForestConfig::forest()).unwrap(),
            s,
        )
        .unwrap();
        for model in [mlp, tree, forest] {
            let right = test
                .iter()
                .zip(s.test_targets())
                .filter(|(r, t)| model.predict_simulated(r).unwrap().class_index() == Some(*t))
                .count();
            assert!(
                right * 10 >= test.len() * 7,
                "{}: {right}",
                model.architecture()
            );
            model.with_output(OutputMode::Label).unwrap();
        }
    }
    // A tree's labels mirror exactly (its splits do not depend on label values).
    let fit = |s: &Split<usize>| {
        compile_forest(
            &train::trees::fit_forest(s, &ForestConfig::default()).unwrap(),
            s,
        )
        .unwrap()
    };
    let (a, b) = (fit(&split), fit(&swapped));
    let flipped = test
        .iter()
        .filter(|r| {
            a.predict_simulated(r).unwrap().class_index()
                == b.predict_simulated(r).unwrap().class_index().map(|c| 1 - c)
        })
        .count();
    assert!(
        flipped * 10 >= test.len() * 9,
        "{flipped} of {}",
        test.len()
    );
}

/// Case 1 through the CLI: `eval` and `export` of a 140/60 table, and of a balanced one whose
/// first row is class 0, with labels 3 and 7.
#[test]
fn cli_binary_logistic_on_any_class_order() {
    let dir = folder("order");
    let imbalanced = write(
        &dir,
        "imbalanced.csv",
        &csv_of(&two_class_rows(140, 60, 3), [0, 1]),
    );
    let mut balanced_rows = two_class_rows(100, 100, 4);
    let first0 = balanced_rows.iter().position(|r| r.2 == 0).unwrap();
    balanced_rows.swap(0, first0);
    // Labels 3 and 7: the first row is label 3, class index 0 (linfa's positive on a tie).
    let balanced = write(&dir, "balanced.csv", &csv_of(&balanced_rows, [3, 7]));
    for path in [&imbalanced, &balanced] {
        let v = eval_json(&["--data", path, "--model", "logistic"]);
        let acc = &v["accuracy"];
        let plain = acc["plain"].as_f64().unwrap();
        assert!(plain >= 0.7, "{v}");
        // A wrong sign would invert the quantized labels.
        assert!(acc["quantized"].as_f64().unwrap() >= plain - 0.03, "{v}");
        assert_eq!(v["agreement"]["encrypted_vs_quantized"], 1.0);
        let out = dir.join("models");
        fhe_ml_ok(&[
            "export",
            "--data",
            path,
            "--model",
            "logistic",
            "--out",
            out.to_str().unwrap(),
        ]);
    }
    assert!(dir.join("models/imbalanced-logistic.fhem").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn constant_table(seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = String::from("x1,const,x2,target\n");
    for _ in 0..200 {
        let (a, b): (f64, f64) = (rng.gen_range(-2.0..2.0), rng.gen_range(-2.0..2.0));
        let noise: f64 = rng.gen_range(-0.05..0.05);
        s += &format!("{a:.5},7.5,{b:.5},{:.5}\n", 2.0 * a - b + noise);
    }
    s
}

/// Case 2: a constant column gets weight 0 in every family and is reported.
#[test]
fn a_constant_column_gets_weight_zero_everywhere() {
    let table = data::parse_csv_str(&constant_table(5), "constant").unwrap();
    let split = table.split_regression(0.2, 42).unwrap();
    assert_eq!(split.constant_features, vec!["const".to_string()]);
    let fit = train::fit_linear(&split).unwrap();
    assert_eq!(fit.weights[1], 0.0);
    assert_eq!(fit.solver, train::LinearSolver::LeastSquares);
    let model = compile(&fit, &split, Quantization::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let mut worst: f64 = 0.0;
    for (row, truth) in split.test_rows().iter().zip(split.test_targets()) {
        let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            model.simulate(row).unwrap()
        );
        let value = client.decrypt(&out).unwrap().value().unwrap();
        worst = worst.max((value - truth).abs());
    }
    assert!(worst < 0.2, "largest error {worst}");

    // Classifiers: the same columns, the target as a class.
    let labels: String = constant_table(6)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return format!("{l}\n");
            }
            let (head, y) = l.rsplit_once(',').unwrap();
            format!("{head},{}\n", i64::from(y.parse::<f64>().unwrap() > 0.0))
        })
        .collect();
    let table = data::parse_csv_str(&labels, "constant").unwrap();
    let split = table.split(0.2, 42).unwrap();
    assert_eq!(split.constant_features, vec!["const".to_string()]);
    let logistic = train::fit_logistic(&split).unwrap();
    let float = fhe_ml::compiler::LinearModel::float_model(&logistic, &split.classes).unwrap();
    assert!(float.weights[[0, 1]].abs() < 1e-9, "{}", float.weights);
    // Compiled: the integer weight of the constant column is 0, and in every family a test
    // row's prediction does not depend on what the constant column holds.
    let compiled = compile(&logistic, &split, Quantization::default()).unwrap();
    let fhe_ml::program::Step::Linear(layer) = &compiled.program().steps[0] else {
        panic!("a linear model is one linear step")
    };
    assert_eq!(layer.weights[1], 0, "{:?}", layer.weights);
    let mlp = train::mlp::fit_mlp(
        &split,
        &MlpConfig {
            epochs: 20,
            ..MlpConfig::default()
        },
    )
    .unwrap();
    let forest = train::trees::fit_forest(&split, &ForestConfig::forest()).unwrap();
    for model in [
        compiled,
        compile_mlp(&mlp, &split).unwrap(),
        compile_forest(&forest, &split).unwrap(),
    ] {
        for row in split.test_rows() {
            let mut other = row.clone();
            other[1] = -1e6;
            assert_eq!(
                model.simulate(&row).unwrap(),
                model.simulate(&other).unwrap(),
                "{}",
                model.architecture()
            );
        }
    }
    for tree in &forest.quantized.trees {
        for node in &tree.nodes {
            if let train::trees::Node::Split { feature, .. } = node {
                assert_ne!(*feature, 1, "a tree split on the constant column");
            }
        }
    }
    compile_forest(&forest, &split).unwrap();
}

/// Case 2 through the CLI: `eval --model linear` succeeds, names the constant column, and
/// keeps R² of the plaintext fit.
#[test]
fn cli_constant_column() {
    let dir = folder("constant");
    let path = write(&dir, "constant.csv", &constant_table(7));
    let v = eval_json(&["--data", &path, "--model", "linear"]);
    assert_eq!(v["constant_features"], serde_json::json!(["const"]));
    assert!(v["r2"]["plain"].as_f64().unwrap() > 0.99, "{v}");
    assert!(v["r2"]["quantized"].as_f64().unwrap() > 0.99, "{v}");
    assert_eq!(v["exact_scores"], true);
    let table =
        String::from_utf8(fhe_ml_ok(&["eval", "--data", &path, "--model", "linear"]).stdout)
            .unwrap();
    assert!(
        table.contains("constant on the training rows (weight 0): const"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 200 rows, 12 with the informative feature at 1e5 instead of about 1 (case 3).
fn glitch_table(seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<String> = (0..200)
        .map(|i| {
            let y = i % 2;
            let x = if i < 12 {
                1e5
            } else {
                1.0 + 0.8 * y as f64 + rng.gen_range(-0.45..0.45)
            };
            format!("{x:.5},{:.5},{y}", rng.gen_range(-1.0..1.0))
        })
        .collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.gen_range(0..=i));
    }
    format!("informative,noise,target\n{}\n", rows.join("\n"))
}

/// Case 3: a few glitch values no longer collapse a tree's quantized accuracy (min/max
/// quantization put every ordinary value in one level: about 50%); the run warns about them,
/// and reports the bits the program uses (4 for trees). Over five splits, so that one split's
/// luck on 40 test rows (a depth-4 tree on 4-bit levels picks other noise splits than on raw
/// values) does not decide: each quantized accuracy stays at 70% or more, and on average
/// within 5 points of the plaintext model's.
#[test]
fn glitch_values_keep_tree_accuracy_and_are_reported() {
    let dir = folder("glitch");
    let path = write(&dir, "glitch.csv", &glitch_table(8));
    for model in ["tree", "forest"] {
        let (mut plain_sum, mut quantized_sum) = (0.0, 0.0);
        let seeds = ["42", "1", "2", "3", "4"];
        for seed in seeds {
            let v = eval_json(&["--data", &path, "--model", model, "--seed", seed]);
            let acc = &v["accuracy"];
            let (plain, quantized) = (
                acc["plain"].as_f64().unwrap(),
                acc["quantized"].as_f64().unwrap(),
            );
            assert!(
                plain >= 0.7 && quantized >= 0.7,
                "{model}, seed {seed}: {v}"
            );
            plain_sum += plain;
            quantized_sum += quantized;
            assert_eq!(acc["encrypted"], acc["quantized"], "{model}");
            assert_eq!(v["bits"], 4, "{model}");
            let warnings = v["warnings"].to_string();
            assert!(
                warnings.contains("feature `informative`"),
                "{model}: {warnings}"
            );
        }
        let n = seeds.len() as f64;
        assert!(
            quantized_sum / n >= plain_sum / n - 0.05,
            "{model}: mean quantized {} against plain {}",
            quantized_sum / n,
            plain_sum / n
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A float linear model given by its weights (on the split's scaled features).
struct Given(fhe_ml::compiler::FloatLinearModel);

impl fhe_ml::compiler::LinearModel for Given {
    fn float_model(&self, _classes: &[i64]) -> fhe_ml::Result<fhe_ml::compiler::FloatLinearModel> {
        Ok(self.0.clone())
    }
}

/// Case 3, linear models: a model that uses the glitched feature well (here given, as a robust
/// trainer would fit it: positive above 1.4 in raw units) keeps its accuracy once quantized,
/// because calibration clips the glitch tail instead of squeezing every ordinary value into
/// the lowest of 256 levels.
#[test]
fn linear_calibration_clips_glitch_values() {
    let table = data::parse_csv_str(&glitch_table(16), "glitch").unwrap();
    let split = table.split(0.2, 42).unwrap();
    let (mean, std) = (split.scaler.mean[0], split.scaler.std[0]);
    // z = 8 (x - 1.4) in raw units, written on scaled features: x = mean + std * x_scaled.
    let given = Given(fhe_ml::compiler::FloatLinearModel {
        weights: ndarray::array![[8.0 * std, 0.0]],
        bias: vec![8.0 * (mean - 1.4)],
        kind: fhe_ml::program::OutputKind::Binary { classes: [0, 1] },
        link: fhe_ml::program::Link::Identity,
    });
    let model = compile(&given, &split, Quantization::default()).unwrap();
    let q = &model.quantizer();
    let top = q.low[0] + q.step[0] * q.max_level() as f64;
    assert!(top < 10.0, "the range still reaches the glitches: {top}");
    let rows = split.test_rows();
    let truth = split.test_targets();
    let float_right = rows
        .iter()
        .zip(&truth)
        .filter(|(r, t)| usize::from(r[0] > 1.4) == **t)
        .count();
    let quantized_right = rows
        .iter()
        .zip(&truth)
        .filter(|(r, t)| model.predict_simulated(r).unwrap().class_index() == Some(**t))
        .count();
    assert!(
        float_right * 10 >= rows.len() * 8,
        "{float_right} of {}",
        rows.len()
    );
    assert!(
        quantized_right + 1 >= float_right,
        "{quantized_right} vs {float_right}"
    );
}

/// A quantized model that loses more than two points of accuracy says so, in the JSON and on
/// stderr: digits logistic regression at 2 bits.
#[test]
fn a_quantization_loss_is_warned() {
    let out = fhe_ml_ok(&[
        "eval",
        "--data",
        "data/digits.csv",
        "--model",
        "logistic",
        "--bits",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = &v["accuracy"];
    let drop = acc["plain"].as_f64().unwrap() - acc["quantized"].as_f64().unwrap();
    assert!(drop > 0.02, "2 bits should cost accuracy: {v}");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("points below plaintext"), "{warnings}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: quantized accuracy"), "{stderr}");
}

/// Case 4 (library): a named record in any order encrypts to the same result as the ordered
/// row; a missing column is named; categories are one-hot encoded.
#[test]
fn records_are_matched_by_name() {
    let table = data::load_csv("data/breast_cancer.csv").unwrap();
    let split = table.split(0.2, 42).unwrap();
    let model = compile(
        &train::fit_logistic(&split).unwrap(),
        &split,
        Quantization::default(),
    )
    .unwrap();
    let (client, server) = model.keygen().unwrap();
    for row in split.test_rows().iter().take(5) {
        let mut record = Record::new().with("id", "not a feature");
        for (name, v) in split.feature_names.iter().zip(row).rev() {
            record = record.with(name.clone(), *v);
        }
        assert_eq!(model.encode(&record).unwrap(), *row);
        let out = server
            .infer(&client.encrypt_record(&record).unwrap())
            .unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            model.simulate(row).unwrap()
        );
    }
    let partial = Record::new().with("mean_radius", 14.0);
    let err = client.encrypt_record(&partial).unwrap_err().to_string();
    assert!(err.contains("mean_texture"), "{err}");
}

/// Case 6 and dialects: `;`, tab and `|` delimiters are detected, a decimal comma is read in
/// `;` files, `--delimiter` forces one, and a wrong one is named in the error.
#[test]
fn csv_dialects() {
    let rows = two_class_rows(60, 60, 9);
    let comma = csv_of(&rows, [0, 1]);
    let reference = data::parse_csv_str(&comma, "t").unwrap();
    let dir = folder("dialects");
    for (name, text) in [
        ("semicolon.csv", comma.replace(',', ";")),
        ("tab.tsv", comma.replace(',', "\t")),
        ("pipe.csv", comma.replace(',', "|")),
        (
            "decimal-comma.csv",
            comma.replace(',', ";").replace('.', ","),
        ),
        (
            "bom-crlf.csv",
            format!("\u{feff}{}", comma.replace('\n', "\r\n")),
        ),
    ] {
        let path = write(&dir, name, &text);
        let table = data::load_csv(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(table.features, reference.features, "{name}");
        assert_eq!(table.target, reference.target, "{name}");
        assert_eq!(table.feature_names, vec!["x1", "x2"], "{name}");
    }
    let semicolon = dir.join("semicolon.csv");
    let semicolon = semicolon.to_str().unwrap();
    let v = eval_json(&["--data", semicolon, "--model", "logistic"]);
    assert_eq!(v["n_features"], 2);
    let forced = eval_json(&[
        "--data",
        semicolon,
        "--delimiter",
        ";",
        "--model",
        "logistic",
    ]);
    assert_eq!(forced["accuracy"], v["accuracy"]);
    let err = fhe_ml_err(&[
        "eval",
        "--data",
        semicolon,
        "--delimiter",
        ",",
        "--model",
        "logistic",
    ]);
    assert!(err.contains("seems delimited by `;`"), "{err}");
    let table = data::load_csv_with(semicolon, CsvOptions::delimiter(b';')).unwrap();
    assert_eq!(table.features, reference.features);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Malformed tables: one clear line each, naming what is wrong.
#[test]
fn malformed_tables_are_refused_by_name() {
    let dir = folder("malformed");
    let many: String = (0..100).map(|i| format!("id{i},{}\n", i % 2)).collect();
    for (text, expect) in [
        ("a,b\n1,2\n", "no `target` column"),
        ("a,a,target\n1,2,0\n3,4,1\n", "two columns are named `a`"),
        ("a,b,target\n1,,0\n3,4,1\n", "empty cell"),
        ("a,b,target\n1,2,0\n3,4\n", "line 3"),
        ("a,b,target\n1,2,yes\n3,4,no\n", "column `target`"),
        (
            "a,b,target\n1,2,0\n3,x,1\n5,6,0\n7,8,1\n",
            "`x` is not a number (the column is otherwise numeric)",
        ),
        ("a,b,target\n1,NaN,0\n3,4,1\n", "not a finite number"),
        ("a,target\n", "no data rows"),
        (
            "a=b,a,target\n1,b,0\n2,c,1\n3,b,0\n4,c,1\n",
            "two features would be named `a=b`",
        ),
        (
            &format!("name,target\n{many}")[..],
            "more than 64 categories",
        ),
    ] {
        let path = write(&dir, "bad.csv", text);
        let err = data::load_csv(&path).unwrap_err().to_string();
        assert!(err.contains(expect), "{text:?}: {err}");
        let cli = fhe_ml_err(&["eval", "--data", &path, "--model", "logistic"]);
        assert!(cli.contains(expect), "{cli}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A table with text categories (`smoker`, `region`): one-hot encoded, the categories in the
/// schema; the clear twin and encryption agree; an unseen category is refused by name.
fn insurance_table(seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let regions = ["north", "south", "east", "west"];
    let mut s = String::from("age,smoker,region,bmi,target\n");
    for _ in 0..240 {
        let age = rng.gen_range(18..80);
        let smoker = rng.gen_bool(0.3);
        let region = regions[rng.gen_range(0..4)];
        let bmi: f64 = rng.gen_range(18.0..40.0);
        let risk = f64::from(u8::from(smoker)) * 2.0
            + (age as f64 - 50.0) / 15.0
            + if region == "south" { 0.8 } else { 0.0 }
            + rng.gen_range(-0.7..0.7);
        s += &format!(
            "{age},{},{region},{bmi:.1},{}\n",
            if smoker { "yes" } else { "no" },
            i64::from(risk > 0.5)
        );
    }
    s
}

#[test]
fn categorical_columns_are_one_hot_encoded() {
    let table = data::parse_csv_str(&insurance_table(10), "insurance").unwrap();
    assert_eq!(
        table.feature_names,
        vec![
            "age",
            "smoker=no",
            "smoker=yes",
            "region=east",
            "region=north",
            "region=south",
            "region=west",
            "bmi"
        ]
    );
    let split = table.split(0.2, 42).unwrap();
    let model = compile(
        &train::fit_logistic(&split).unwrap(),
        &split,
        Quantization::default(),
    )
    .unwrap();
    let right = split
        .test_rows()
        .iter()
        .zip(split.test_targets())
        .filter(|(r, t)| model.predict_simulated(r).unwrap().class_index() == Some(*t))
        .count();
    assert!(right * 10 >= split.test_rows().len() * 8, "{right}");
    let (client, server) = model.keygen().unwrap();
    let record = Record::new()
        .with("region", "south")
        .with("bmi", 31.0)
        .with("smoker", "yes")
        .with("age", 63.0);
    let row = model.encode(&record).unwrap();
    assert_eq!(row, vec![63.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 31.0]);
    let out = server
        .infer(&client.encrypt_record(&record).unwrap())
        .unwrap();
    assert_eq!(
        client.decrypt_scores(&out).unwrap(),
        model.simulate(&row).unwrap()
    );
    let unseen = record.clone().with("region", "central");
    let unseen = Record {
        cells: unseen.cells.into_iter().skip(1).collect(),
    };
    let err = client.encrypt_record(&unseen).unwrap_err().to_string();
    assert!(
        err.contains("region") && err.contains("`central` was not seen in training"),
        "{err}"
    );
    // A regression on the same columns: least squares (each one-hot block's first category is
    // the reference level), no ridge fallback.
    let regression: String = insurance_table(17)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return format!("{l}\n");
            }
            let age: f64 = l.split(',').next().unwrap().parse().unwrap();
            let smoker = f64::from(u8::from(l.contains(",yes,")));
            let south = f64::from(u8::from(l.contains(",south,")));
            let (head, _) = l.rsplit_once(',').unwrap();
            format!("{head},{}\n", 100.0 * age + 5000.0 * smoker + 700.0 * south)
        })
        .collect();
    let reg = data::parse_csv_str(&regression, "charges")
        .unwrap()
        .split_regression(0.2, 42)
        .unwrap();
    let fit = train::fit_linear(&reg).unwrap();
    assert_eq!(fit.solver, train::LinearSolver::LeastSquares);
    let model = compile(&fit, &reg, Quantization::default()).unwrap();
    for (row, truth) in reg.test_rows().iter().zip(reg.test_targets()) {
        let v = model.predict_simulated(row).unwrap().value().unwrap();
        assert!((v - truth).abs() < 100.0, "{v} vs {truth}");
    }
    // Trees and the MLP read the same encoded features.
    let forest = train::trees::fit_forest(&split, &ForestConfig::default()).unwrap();
    compile_forest(&forest, &split).unwrap();
}

/// Cases 4 and 5 through the CLI and the service: `export` from a file name with a space or
/// accents, `serve --models` loads it, `predict` matches columns by name (reversed order,
/// an extra column), refuses a file that lacks a column (naming it) or a header of other
/// names, and encodes categories.
#[test]
fn export_serve_predict_by_column_name() {
    let dir = folder("names");
    let models = dir.join("models");
    let models = models.to_str().unwrap();
    let spaced = write(
        &dir,
        "patient data.csv",
        &csv_of(&two_class_rows(50, 50, 11), [0, 1]),
    );
    let accents = write(&dir, "données.csv", &insurance_table(12));
    fhe_ml_ok(&[
        "export", "--data", &spaced, "--model", "logistic", "--out", models,
    ]);
    fhe_ml_ok(&[
        "export", "--data", &accents, "--model", "logistic", "--out", models,
    ]);
    fhe_ml_ok(&[
        "export",
        "--data",
        &spaced,
        "--model",
        "logistic",
        "--out",
        models,
        "--name",
        "ward_7.v2",
    ]);
    for file in [
        "patient-data-logistic.fhem",
        "donnees-logistic.fhem",
        "ward_7.v2.fhem",
    ] {
        assert!(Path::new(models).join(file).exists(), "{file}");
    }
    let err = fhe_ml_err(&[
        "export", "--data", &spaced, "--model", "logistic", "--out", models, "--name", "a b",
    ]);
    assert!(err.contains("invalid model name \"a b\""), "{err}");
    // A damaged model file is a model-file error, not a ciphertext one.
    let bad = dir.join("bad-models");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.fhem"), b"FHEML not a model").unwrap();
    let err = fhe_ml_err(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--models",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("invalid model file"), "{err}");
    assert!(!err.contains("ciphertext"), "{err}");

    let serve = common::Serve::start(models);
    let url = serve.url.clone();
    let predict = |model: &str, input: &str| {
        fhe_ml(&[
            "predict", "--server", &url, "--model", model, "--input", input,
        ])
    };
    // Ordered, reversed with an extra column: the same predictions.
    let rows = two_class_rows(5, 5, 13);
    let ordered = write(&dir, "ordered.csv", &csv_of(&rows, [0, 1]));
    let mut reversed = String::from("note,x2,x1\n");
    for (a, b, _) in &rows {
        reversed += &format!("n/a,{b:.5},{a:.5}\n");
    }
    let reversed = write(&dir, "reversed.csv", &reversed);
    let a = predict("patient-data-logistic", &ordered);
    let b = predict("patient-data-logistic", &reversed);
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 11);
    let note = String::from_utf8_lossy(&b.stderr);
    assert!(
        note.contains("ignoring column(s) the model does not read: note"),
        "{note}"
    );
    // Other names, or a missing column: refused, naming the column.
    let other = write(&dir, "other.csv", "p,q,r,s\n1,2,3,4\n");
    let out = predict("patient-data-logistic", &other);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing columns `x1`, `x2`"),
        "{err}"
    );
    let lacking = write(&dir, "lacking.csv", "x2,target\n1,0\n");
    let out = predict("patient-data-logistic", &lacking);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing column `x1`"),
        "{err}"
    );
    // Categories through the service; an unseen one is refused with its line.
    let people = write(
        &dir,
        "people.csv",
        "region,smoker,bmi,age\nsouth,yes,31.0,63\nnorth,no,22.5,25\n",
    );
    let out = predict("donnees-logistic", &people);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // The service lists the columns a row must name, with their categories.
    let info: serde_json::Value =
        serde_json::from_str(&ureq_get(&format!("{url}/v1/models/donnees-logistic"))).unwrap();
    assert_eq!(info["columns"][1]["name"], "smoker");
    assert_eq!(
        info["columns"][1]["kind"]["Categorical"]["categories"],
        serde_json::json!(["no", "yes"])
    );
    let unseen = write(
        &dir,
        "unseen.csv",
        "region,smoker,bmi,age\ncentral,yes,31.0,63\n",
    );
    let out = predict("donnees-logistic", &unseen);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 2") && err.contains("`central`"),
        "{err}"
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of a GET on the test's service.
fn ureq_get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The one naming rule: any file stem becomes a valid name; invalid names are refused.
#[test]
fn model_names_follow_one_rule() {
    use fhe_ml::service::{check_model_name, sanitize_model_name};
    for (stem, name) in [
        ("patient data", "patient-data"),
        ("données", "donnees"),
        ("Überblick 2024 (final)", "Uberblick-2024-final"),
        ("病人", "model"),
        ("..hidden", "hidden"),
        ("a/b\\c", "a-b-c"),
    ] {
        assert_eq!(sanitize_model_name(stem), name);
        check_model_name(name).unwrap();
    }
    let long = "x".repeat(200);
    assert_eq!(sanitize_model_name(&long).len(), 64);
    for bad in ["", "a b", ".x", &long, "é"] {
        assert!(check_model_name(bad).is_err(), "{bad:?}");
    }
    let name =
        fhe_ml::eval::service_name(&long, fhe_ml::eval::ModelKind::Forest, OutputMode::TopK(12));
    check_model_name(&name).unwrap();
}

/// Scale: features and targets at 1e-9, 1e12 and with large offsets compile, keep accuracy,
/// and the encrypted result equals the clear twin.
#[test]
fn extreme_scales_and_offsets_keep_accuracy() {
    for (scale, offset) in [(1e-9, 0.0), (1e12, 0.0), (1.0, 1e9), (1e-3, -5e6)] {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let mut s = String::from("a,b,target\n");
        for _ in 0..150 {
            let (a, b): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            let y = 3.0 * a - 2.0 * b + rng.gen_range(-0.01..0.01);
            s += &format!(
                "{:e},{:e},{:e}\n",
                a * scale + offset,
                b * scale + offset,
                y * scale + offset
            );
        }
        let table = data::parse_csv_str(&s, "scaled").unwrap();
        let split = table.split_regression(0.2, 42).unwrap();
        assert!(split.constant_features.is_empty(), "{scale} {offset}");
        let fit = train::fit_linear(&split).unwrap();
        let model = compile(&fit, &split, Quantization::default()).unwrap();
        let truth = split.test_targets();
        let plain = fit.predict(&split.test.records().to_owned());
        let (client, server) = model.keygen().unwrap();
        for (i, row) in split.test_rows().iter().enumerate() {
            let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
            assert_eq!(
                client.decrypt_scores(&out).unwrap(),
                model.simulate(row).unwrap()
            );
            let v = client.decrypt(&out).unwrap().value().unwrap();
            // Within 1% of the target's range (10 units × scale) of the float prediction.
            assert!(
                (v - plain[i]).abs() <= 0.1 * scale,
                "{scale} {offset}: {v} vs {} (truth {})",
                plain[i],
                truth[i]
            );
        }
    }
}

/// Least squares without a unique solution (a duplicated column, more features than rows)
/// falls back to ridge, says so, and still predicts well.
#[test]
fn collinear_and_wide_regressions_fall_back_to_ridge() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut dup = String::from("a,a_copy,b,target\n");
    for _ in 0..120 {
        let (a, b): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        dup += &format!("{a},{a},{b},{}\n", 2.0 * a + b + rng.gen_range(-0.01..0.01));
    }
    let mut wide = (0..40)
        .map(|j| format!("f{j}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",target\n";
    for _ in 0..30 {
        let x: Vec<f64> = (0..40).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let y = x[0] - 2.0 * x[1];
        let cells: Vec<String> = x.iter().map(|v| v.to_string()).collect();
        wide += &format!("{},{y}\n", cells.join(","));
    }
    for (text, min_r2) in [(dup, 0.99), (wide, 0.0)] {
        let table = data::parse_csv_str(&text, "t").unwrap();
        let split = table.split_regression(0.2, 42).unwrap();
        let fit = train::fit_linear(&split).unwrap();
        assert!(
            matches!(fit.solver, train::LinearSolver::Ridge { .. }),
            "{:?}",
            fit.solver
        );
        let model = compile(&fit, &split, Quantization::default()).unwrap();
        let truth = split.test_targets();
        let predicted: Vec<f64> = split
            .test_rows()
            .iter()
            .map(|r| model.predict_simulated(r).unwrap().value().unwrap())
            .collect();
        let mean = truth.iter().sum::<f64>() / truth.len() as f64;
        let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
        let ss_res: f64 = truth
            .iter()
            .zip(&predicted)
            .map(|(t, p)| (t - p).powi(2))
            .sum();
        assert!(
            1.0 - ss_res / ss_tot >= min_r2,
            "R² {}",
            1.0 - ss_res / ss_tot
        );
    }
    let dir = folder("ridge");
    let mut dup = String::from("a,a_copy,target\n");
    for i in 0..50 {
        dup += &format!("{i},{i},{}\n", 3 * i + 1);
    }
    let path = write(&dir, "dup.csv", &dup);
    let out = fhe_ml_ok(&["eval", "--data", &path, "--model", "linear", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["warnings"].to_string().contains("fitted ridge"), "{v}");
    assert!(v["r2"]["quantized"].as_f64().unwrap() > 0.99, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
