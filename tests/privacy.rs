//! Model privacy: label mode returns the clear model's label and nothing that solves for the
//! weights; scores mode without sanitization gives every weight away from one query.
//!
//! The attack is the client's (it holds the secret key and made the input): a leveled output's
//! mask is `Σ_i w_i · F[i..i+N]` over the input's mask `F`, which the seed in the input
//! expands to, so one output ciphertext is `N` linear equations mod 2^64 in the `d` weights.
//! The attacker gets the output at full 64-bit precision (`Server::infer_unrounded`), the most
//! a server could reveal; the wire's rounding to fewer bits only moves the same system to a
//! lattice problem.

use fhe_ml::data::{load_csv, Split};
use fhe_ml::fhe::kernels::{expand_mask, extended_mask, unpack_bits};
use fhe_ml::fhe::OutputMode;
use fhe_ml::prelude::*;
use fhe_ml::program::LinearLayer;
use fhe_ml::train;
use ndarray::Axis;
use rayon::prelude::*;

fn rows<T>(split: &Split<T>) -> Vec<Vec<f64>> {
    split
        .test_raw
        .axis_iter(Axis(0))
        .map(|r| r.to_vec())
        .collect()
}

fn logistic(path: &str) -> (Split<usize>, CompiledModel) {
    let split = load_csv(path).unwrap().split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    (split, model)
}

/// Inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(a: u64) -> u64 {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// Solves `Σ_i w_i F[i+u] = mask[u] (mod 2^64)` for `w` by Gaussian elimination with odd
/// pivots over the first `4d` equations; `None` when no odd pivot exists. Returns the
/// candidate and whether it satisfies all `N` equations.
fn solve_weights(f: &[u64], mask: &[u64], d: usize) -> Option<(Vec<i64>, bool)> {
    let n = mask.len();
    let mut rows: Vec<Vec<u64>> = (0..(4 * d).min(n))
        .map(|u| {
            let mut r: Vec<u64> = (0..d).map(|i| f[i + u]).collect();
            r.push(mask[u]);
            r
        })
        .collect();
    for c in 0..d {
        let p = (c..rows.len()).find(|&r| rows[r][c] & 1 == 1)?;
        rows.swap(c, p);
        let inv = inverse(rows[c][c]);
        for x in rows[c].iter_mut() {
            *x = x.wrapping_mul(inv);
        }
        let pivot = rows[c].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != c && row[c] != 0 {
                let k = row[c];
                for (x, y) in row.iter_mut().zip(&pivot) {
                    *x = x.wrapping_sub(k.wrapping_mul(*y));
                }
            }
        }
    }
    let w: Vec<u64> = (0..d).map(|c| rows[c][d]).collect();
    let consistent = (0..n).all(|u| {
        (0..d).fold(0u64, |acc, i| acc.wrapping_add(w[i].wrapping_mul(f[i + u]))) == mask[u]
    });
    Some((w.into_iter().map(|x| x as i64).collect(), consistent))
}

/// The attack on one query: every output ciphertext gives a weight-row candidate; with the
/// input's own bodies, the body gives the bias.
struct Recovered {
    rows: Vec<Option<(Vec<i64>, bool)>>,
    biases: Vec<Option<i64>>,
}

fn attack(model: &CompiledModel, client: &Client, server: &Server, row: &[f64]) -> Recovered {
    let d = model.n_features();
    let n = model.plan.params.polynomial_size;
    let ct = client.encrypt(row).unwrap();
    let f = extended_mask(&expand_mask(ct.mask_seed(), n), d);
    let bits = ct.body_bits();
    let bodies: Vec<u64> = unpack_bits(ct.body_bytes(), bits, d)
        .unwrap()
        .into_iter()
        .map(|b| b << (64 - bits))
        .collect();
    let outputs = server.infer_unrounded(&ct).unwrap();
    let delta = 1u64 << model.plan.delta_log2;
    let rows: Vec<Option<(Vec<i64>, bool)>> = outputs
        .iter()
        .map(|out| solve_weights(&f, &out[..n], d))
        .collect();
    let biases = outputs
        .iter()
        .zip(&rows)
        .map(|(out, w)| {
            let (w, _) = w.as_ref()?;
            let dot = w.iter().zip(&bodies).fold(0u64, |acc, (&wi, &b)| {
                acc.wrapping_add((wi as u64).wrapping_mul(b))
            });
            let rest = out[n].wrapping_sub(dot);
            (rest % delta == 0).then(|| (rest as i64) >> model.plan.delta_log2)
        })
        .collect();
    Recovered { rows, biases }
}

fn layer(model: &CompiledModel) -> &LinearLayer {
    model.program.as_linear().unwrap()
}

/// Scores mode, unsanitized: one query recovers every weight and bias exactly.
fn scores_leak(path: &str) {
    let (split, model) = logistic(path);
    let (client, server) = model.keygen().unwrap();
    let row = &rows(&split)[0];
    let got = attack(&model, &client, &server, row);
    let truth = layer(&model);
    assert_eq!(got.rows.len(), truth.n_outputs);
    for o in 0..truth.n_outputs {
        let (w, consistent) = got.rows[o].clone().expect("an odd pivot in 4d equations");
        assert!(
            consistent,
            "{path}: output {o} is not a linear map of the masks"
        );
        assert_eq!(w, truth.row(o), "{path}: weights of output {o}");
        assert_eq!(got.biases[o], Some(truth.bias[o]), "{path}: bias {o}");
    }
}

/// Label mode, sanitized: the same attack finds no consistent solution, and its candidates
/// match the true weights no more often than chance (a weight is one of ~2^8 values; the
/// candidates are 64-bit).
fn label_resists(path: &str) {
    let (split, model) = logistic(path);
    let truth = layer(&model).clone();
    let model = model.with_output(OutputMode::Label).unwrap();
    let (client, server) = model.keygen().unwrap();
    for row in rows(&split).iter().take(2) {
        let got = attack(&model, &client, &server, row);
        for candidate in got.rows.iter().flatten() {
            let (w, consistent) = candidate;
            assert!(!consistent, "{path}: a label output solved as a linear map");
            let matches = (0..truth.n_outputs)
                .map(|o| w.iter().zip(truth.row(o)).filter(|(a, b)| a == b).count())
                .max()
                .unwrap();
            assert!(
                matches <= 1,
                "{path}: {matches} weights recovered from a label output"
            );
        }
        assert!(got.biases.iter().flatten().all(|b| !truth.bias.contains(b)));
    }
}

#[test]
fn one_scores_query_gives_away_every_weight_breast_cancer() {
    scores_leak("data/breast_cancer.csv");
}

#[test]
fn one_scores_query_gives_away_every_weight_digits() {
    scores_leak("data/digits.csv");
}

#[test]
fn sanitized_labels_resist_the_attack_breast_cancer() {
    label_resists("data/breast_cancer.csv");
}

#[test]
fn sanitized_labels_resist_the_attack_digits() {
    label_resists("data/digits.csv");
}

/// Label mode returns exactly the clear model's label: the whole breast-cancer test split,
/// and the first rows of digits' (each digit row costs 280 bootstraps; `fhe-ml eval
/// --output label` runs the whole split).
fn labels_agree(path: &str, limit: usize) {
    let (split, model) = logistic(path);
    let model = model.with_output(OutputMode::Label).unwrap();
    let (client, server) = model.keygen().unwrap();
    let head = model.label_head().unwrap().unwrap();
    assert_eq!(server.bootstraps_per_inference(), head.bootstraps());
    let rows = rows(&split);
    let rows = &rows[..limit.min(rows.len())];
    let cts: Vec<EncryptedInput> = rows.iter().map(|r| client.encrypt(r).unwrap()).collect();
    let outs: Vec<EncryptedOutput> = cts.par_iter().map(|c| server.infer(c).unwrap()).collect();
    for (i, (row, out)) in rows.iter().zip(&outs).enumerate() {
        let clear = model.predict_simulated(row).unwrap().class_index().unwrap();
        let blob = out.to_bytes().unwrap();
        let got = client
            .decrypt(&EncryptedOutput::from_bytes(&blob).unwrap())
            .unwrap();
        assert_eq!(got.class_index(), Some(clear), "{path} row {i}");
        assert!(
            client.decrypt_scores(out).is_err(),
            "a label result read as scores"
        );
    }
    // A scores client refuses a label result.
    let scores_model = logistic(path).1;
    assert!(scores_model.model_id != model.model_id);
}

#[test]
fn label_mode_agrees_on_the_whole_breast_cancer_split() {
    labels_agree("data/breast_cancer.csv", usize::MAX);
}

#[test]
fn label_mode_agrees_on_digits_rows() {
    labels_agree("data/digits.csv", 12);
}

#[test]
fn label_mode_is_refused_for_regressions() {
    let split: Split<f64> = fhe_ml::data::load_csv("data/breast_cancer.csv")
        .unwrap()
        .split_regression(0.2, 42)
        .unwrap_or_else(|_| panic!("regression split"));
    let fitted = train::fit_linear(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    let err = model.with_output(OutputMode::Label).unwrap_err();
    assert!(err.to_string().contains("label mode"), "{err}");
}
