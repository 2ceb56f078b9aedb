//! Model privacy: label mode returns the clear model's label and nothing that solves for the
//! weights; scores mode without sanitization gives every weight away from one query.
//!
//! The attack is the client's (it holds the secret key and made the input): a leveled output's
//! mask is `Σ_i w_i · F[i..i+N]` over the input's mask `F`, which the seed in the input
//! expands to, so one output ciphertext is `N` linear equations mod 2^64 in the `d` weights.
//! Two versions: on the output at full 64-bit precision (`Server::infer_unrounded`, exact
//! algebra), and on what crosses the wire (coefficients rounded to the output's bits: a small
//! lattice problem, solved with LLL).

use fhe_ml::data::{load_csv, Split};
use fhe_ml::fhe::kernels::{expand_mask, extended_mask, unpack_bits};
use fhe_ml::fhe::label::top_labels;
use fhe_ml::fhe::OutputMode;
use fhe_ml::prelude::*;
use fhe_ml::program::LinearLayer;
use fhe_ml::train;
use rayon::prelude::*;

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
    let n = model.plan().params.polynomial_size;
    let ct = client.encrypt(row).unwrap();
    let f = extended_mask(&expand_mask(ct.mask_seed(), n), d);
    let bits = ct.body_bits();
    let bodies: Vec<u64> = unpack_bits(ct.body_bytes(), bits, d)
        .unwrap()
        .into_iter()
        .map(|b| b << (64 - bits))
        .collect();
    let outputs = server.infer_unrounded(&ct).unwrap();
    let delta = 1u64 << model.plan().delta_log2;
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
            (rest % delta == 0).then(|| (rest as i64) >> model.plan().delta_log2)
        })
        .collect();
    Recovered { rows, biases }
}

/// Most weights a candidate row shares, position by position, with any true row.
fn best_match(candidate: &[i64], truth: &LinearLayer) -> usize {
    (0..truth.n_outputs)
        .map(|o| {
            candidate
                .iter()
                .zip(truth.row(o))
                .filter(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn layer(model: &CompiledModel) -> &LinearLayer {
    model.program().as_linear().unwrap()
}

/// Scores mode, unsanitized: one query recovers every weight and bias exactly.
fn scores_leak(path: &str) {
    let (split, model) = logistic(path);
    let (client, server) = model.keygen().unwrap();
    let row = &split.test_rows()[0];
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
    for row in split.test_rows().iter().take(2) {
        let got = attack(&model, &client, &server, row);
        for candidate in got.rows.iter().flatten() {
            let (w, consistent) = candidate;
            assert!(!consistent, "{path}: a label output solved as a linear map");
            let matches = best_match(w, &truth);
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

/// Label (top-k) mode returns exactly the clear model's label (its k best, in order): the
/// whole breast-cancer test split, and the first rows of digits' (each digit row costs about
/// 300 bootstraps; `fhe-ml eval --output label` runs the whole split).
fn labels_agree(path: &str, mode: OutputMode, limit: usize) {
    let (split, model) = logistic(path);
    let model = model.with_output(mode).unwrap();
    let (client, server) = model.keygen().unwrap();
    let head = model.label_head().unwrap();
    assert_eq!(server.bootstraps_per_inference(), head.bootstraps());
    let rows = split.test_rows();
    let rows = &rows[..limit.min(rows.len())];
    let cts: Vec<EncryptedInput> = rows.iter().map(|r| client.encrypt(r).unwrap()).collect();
    let outs: Vec<EncryptedOutput> = cts.par_iter().map(|c| server.infer(c).unwrap()).collect();
    for (i, (row, out)) in rows.iter().zip(&outs).enumerate() {
        let scores = model.simulate_scores(row).unwrap();
        let clear = top_labels(&scores, mode.labels().unwrap());
        // The clear interpreter runs the label head too.
        let twin: Vec<usize> = model
            .simulate(row)
            .unwrap()
            .iter()
            .map(|&l| l as usize)
            .collect();
        assert_eq!(twin, clear);
        let out = EncryptedOutput::from_bytes(&out.to_bytes().unwrap()).unwrap();
        assert_eq!(
            client.decrypt_labels(&out).unwrap(),
            clear,
            "{path} row {i} {scores:?}"
        );
        let best = client.decrypt(&out).unwrap().class_index();
        assert_eq!(best, model.predict_simulated(row).unwrap().class_index());
        assert!(
            client.decrypt_scores(&out).is_err(),
            "a label result read as scores"
        );
    }
    // A scores client refuses a label result.
    let scores_model = logistic(path).1;
    assert!(scores_model.model_id() != model.model_id());
}

#[test]
fn label_mode_agrees_on_the_whole_breast_cancer_split() {
    labels_agree("data/breast_cancer.csv", OutputMode::Label, usize::MAX);
}

#[test]
fn label_mode_agrees_on_digits_rows() {
    labels_agree("data/digits.csv", OutputMode::Label, 12);
}

#[test]
fn top3_mode_ranks_digits_rows_like_the_clear_model() {
    labels_agree("data/digits.csv", OutputMode::TopK(3), 8);
}

/// Top-k needs several scores to rank; results of one mode are refused by another's client.
#[test]
fn top_k_is_checked() {
    let (_, binary) = logistic("data/breast_cancer.csv");
    let err = binary.with_output(OutputMode::TopK(2)).unwrap_err();
    assert!(err.to_string().contains("top-2"), "{err}");
    let (split, digits) = logistic("data/digits.csv");
    assert!(digits.clone().with_output(OutputMode::TopK(11)).is_err());
    let top3 = digits.clone().with_output(OutputMode::TopK(3)).unwrap();
    let label = digits.with_output(OutputMode::Label).unwrap();
    assert_ne!(top3.model_id(), label.model_id());
    let head = top3.label_head().unwrap();
    assert_eq!(head.output_ciphertexts(), 12);
    let (client, server) = top3.keygen().unwrap();
    let out = server
        .infer(&client.encrypt(&split.test_rows()[0]).unwrap())
        .unwrap();
    let (label_client, _) = label.keygen().unwrap();
    let err = label_client.decrypt_labels(&out).unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
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

/// LLL reduction (Schnorr–Euchner style: exact integer basis, Gram–Schmidt in floating point,
/// row `k` recomputed on every visit), `delta = 0.99`. Enough for the small lattices below.
fn lll(b: &mut [Vec<i128>]) {
    let n = b.len();
    let dot = |x: &[i128], y: &[i128]| x.iter().zip(y).map(|(a, c)| a * c).sum::<i128>() as f64;
    let mut mu = vec![vec![0f64; n]; n];
    let mut r = vec![vec![0f64; n]; n];
    let mut norm = vec![0f64; n];
    let gso_row = |k: usize,
                   b: &[Vec<i128>],
                   mu: &mut Vec<Vec<f64>>,
                   r: &mut Vec<Vec<f64>>,
                   norm: &mut Vec<f64>| {
        for j in 0..k {
            let mut v = dot(&b[k], &b[j]);
            for l in 0..j {
                v -= mu[j][l] * r[k][l];
            }
            r[k][j] = v;
            mu[k][j] = v / norm[j];
        }
        let mut v = dot(&b[k], &b[k]);
        for j in 0..k {
            v -= mu[k][j] * r[k][j];
        }
        norm[k] = v;
    };
    gso_row(0, b, &mut mu, &mut r, &mut norm);
    let mut k = 1;
    let mut steps = 0u64;
    while k < n {
        steps += 1;
        assert!(steps < 10_000_000, "LLL did not converge");
        if k == 1 {
            gso_row(0, b, &mut mu, &mut r, &mut norm);
        }
        // Size reduction, repeated until the floating-point coefficients settle.
        loop {
            gso_row(k, b, &mut mu, &mut r, &mut norm);
            let mut reduced = false;
            for j in (0..k).rev() {
                let q = mu[k][j].round();
                if q.abs() >= 1.0 {
                    let qi = q as i128;
                    let (lo, hi) = b.split_at_mut(k);
                    for (x, y) in hi[0].iter_mut().zip(&lo[j]) {
                        *x -= qi * y;
                    }
                    let (upper, lower) = mu.split_at_mut(k);
                    for (x, y) in lower[0][..j].iter_mut().zip(&upper[j][..j]) {
                        *x -= q * y;
                    }
                    lower[0][j] -= q;
                    reduced = true;
                }
            }
            if !reduced {
                break;
            }
        }
        if norm[k] < (0.99 - mu[k][k - 1].powi(2)) * norm[k - 1] {
            b.swap(k, k - 1);
            k = (k - 1).max(1);
        } else {
            k += 1;
        }
    }
}

/// The attack on what actually crosses the wire: output coefficients rounded to the output's
/// bits. The same equations, each now known to ±2^(63-bits), are a closest-vector problem in a
/// small lattice (Kannan's embedding over `m` of the 2048 equations, reduced to 40-bit
/// numbers), which LLL solves. Returns, per output ciphertext, the weight row found, if any.
fn wire_attack(
    model: &CompiledModel,
    client: &Client,
    server: &Server,
    row: &[f64],
    m: usize,
) -> Vec<Option<Vec<i64>>> {
    let d = model.n_features();
    let n = model.plan().params.polynomial_size;
    let ct = client.encrypt(row).unwrap();
    let f = extended_mask(&expand_mask(ct.mask_seed(), n), d);
    let out = server.infer(&ct).unwrap();
    type Output = ([u8; 16], OutputMode, u32, u32, u32, Vec<u8>);
    let (_, _, bits, n_out, dim, packed): Output = fhe_ml::fhe::wire::open(
        fhe_ml::fhe::wire::Kind::EncryptedOutput,
        &out.to_bytes().unwrap(),
    )
    .unwrap();
    assert!(bits < 64, "the wire output is rounded");
    let coefficients = unpack_bits(&packed, bits, n_out as usize * (dim as usize + 1)).unwrap();
    let (t, kw, ke) = (40u32, 16i128, 1i128 << 10);
    let shift = 64 - t;
    let modulus = 1i128 << t;
    let top = |x: u64| ((x.wrapping_add(1u64 << (shift - 1)) >> shift) as i128) % modulus;
    (0..n_out as usize)
        .into_par_iter()
        .map(|o| {
            let ct_o = &coefficients[o * (n + 1)..(o + 1) * (n + 1)];
            let size = d + m + 1;
            let mut basis = vec![vec![0i128; size]; size];
            for i in 0..d {
                basis[i][i] = kw;
                for u in 0..m {
                    basis[i][d + u] = top(f[i + u]);
                }
            }
            for u in 0..m {
                basis[d + u][d + u] = modulus;
                basis[d + m][d + u] = (modulus - top(ct_o[u] << (64 - bits))) % modulus;
            }
            basis[d + m][d + m] = ke;
            lll(&mut basis);
            basis.iter().find_map(|v| {
                let sign = match v[d + m] {
                    x if x == ke => 1,
                    x if x == -ke => -1,
                    _ => return None,
                };
                v[..d]
                    .iter()
                    .all(|x| x % kw == 0)
                    .then(|| v[..d].iter().map(|x| (sign * x / kw) as i64).collect())
            })
        })
        .collect()
}

/// Scores on the wire: every weight row comes out of one query.
fn wire_scores_leak(path: &str, m: usize) {
    let (split, model) = logistic(path);
    let (client, server) = model.keygen().unwrap();
    let truth = layer(&model).clone();
    let found = wire_attack(&model, &client, &server, &split.test_rows()[0], m);
    assert_eq!(found.len(), truth.n_outputs);
    for (o, w) in found.iter().enumerate() {
        assert_eq!(w.as_deref(), Some(truth.row(o)), "{path}: output {o}");
    }
}

/// Sanitized labels on the wire: the lattice finds no weight row.
fn wire_label_resists(path: &str, m: usize) {
    let (split, model) = logistic(path);
    let truth = layer(&model).clone();
    let model = model.with_output(OutputMode::Label).unwrap();
    let (client, server) = model.keygen().unwrap();
    for w in wire_attack(&model, &client, &server, &split.test_rows()[0], m)
        .into_iter()
        .flatten()
    {
        let matches = best_match(&w, &truth);
        assert!(
            matches <= 1,
            "{path}: {matches} weights from a label on the wire"
        );
    }
}

#[test]
fn one_wire_scores_query_gives_away_every_weight_breast_cancer() {
    wire_scores_leak("data/breast_cancer.csv", 24);
}

#[test]
fn one_wire_scores_query_gives_away_every_weight_digits() {
    wire_scores_leak("data/digits.csv", 40);
}

#[test]
fn sanitized_labels_on_the_wire_resist_the_lattice_attack() {
    wire_label_resists("data/breast_cancer.csv", 24);
    wire_label_resists("data/digits.csv", 40);
}
