//! Imported ONNX models ([`crate::import`]) behind the same [`Compile`] trait as fitted ones:
//! - a linear model compiles as a fitted linfa one: its preprocessing is already folded into
//!   its weights on raw features, which are re-expressed on the split's scaled features and
//!   calibrated as [`compile_linear`] does;
//! - a ReLU network is quantized after training: each hidden neuron's output is divided by its
//!   largest value on the training rows (the next layer multiplied back), so the network has
//!   the clipped activations of [`crate::train::mlp`], and [`compile_mlp`] compiles it;
//! - a tree ensemble compiles exactly: the client's binned quantizer cuts each feature at the
//!   model's own float32 thresholds ([`crate::import::Comparison::cut`]), so every comparison
//!   is the float model's; only the leaf weights are quantized, to [`LEAF_BITS`] bits.
//!
//! The float twin ([`crate::model::Mode::Float`]) is the imported float model itself.

use ndarray::Array2;

use super::forest::{compile_level_forest, LevelForest, LevelNode};
use super::{compile_linear, compile_mlp, Compile, LinearModel, Options};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::import::{Body, Dense, Head, OnnxModel, TreeEnsemble, TreeNode};
use crate::model::{CompiledModel, FloatLinearModel, FloatTwin};
use crate::program::{Decoder, OutputKind};
use crate::quant::{InputQuantizer, Quantization};
use crate::train::mlp::{DenseLayer, Mlp, MlpConfig};

/// Most bits of an imported ensemble's leaf weights (±127 levels of the largest weight); fewer
/// when the summed lookups' noise needs a coarser grid (see `compile_trees`).
pub const LEAF_BITS: u32 = 8;
/// Largest probability that a decrypted score of an imported ensemble differs from the clear
/// twin's (2^-40).
pub const MAX_SCORE_ERROR: f64 = 1.0 / (1u64 << 40) as f64;
/// Activation bits of an imported network (a ReLU clipped to 15 levels of each neuron's
/// largest training value).
pub const IMPORTED_ACTIVATION_BITS: u32 = 4;
/// Weight bits of an imported network's layers fed by bootstraps.
pub const IMPORTED_WEIGHT_BITS: u32 = 6;

impl Compile<usize> for OnnxModel {
    fn compile_with(&self, split: &Split<usize>, options: &Options) -> Result<CompiledModel> {
        check_width(self, split.n_features())?;
        let classes = self.classes().ok_or_else(|| {
            Error::Compile("this ONNX model is a regression; the data has class labels".into())
        })?;
        let order = class_order(classes, &split.classes)?;
        let model = match self.body() {
            Body::Net { hidden, output } if hidden.is_empty() => {
                compile_imported_linear(self, output, Some(&order), split, options)?
            }
            Body::Net { hidden, output } => {
                let mlp = imported_mlp(self, hidden, output, Some(&order), split, options)?;
                compile_mlp(&mlp, split)?
            }
            Body::Trees(trees) => compile_trees(self, trees, Some(&order), split, options)?,
        };
        model
            .with_output(options.output)
            .map(|m| m.with_float(FloatTwin::Imported(Box::new(self.clone()))))
    }
}

impl Compile<f64> for OnnxModel {
    fn compile_with(&self, split: &Split<f64>, options: &Options) -> Result<CompiledModel> {
        check_width(self, split.n_features())?;
        if self.is_classifier() {
            return Err(Error::Compile(
                "this ONNX model is a classifier; the data has a real-valued target".into(),
            ));
        }
        let model = match self.body() {
            Body::Net { hidden, output } if hidden.is_empty() => {
                compile_imported_linear(self, output, None, split, options)?
            }
            Body::Net { hidden, output } => {
                let mlp = imported_mlp(self, hidden, output, None, split, options)?;
                super::mlp::compile_mlp_as(&mlp, split, OutputKind::Regression)?
            }
            Body::Trees(trees) => compile_trees(self, trees, None, split, options)?,
        };
        model
            .with_output(options.output)
            .map(|m| m.with_float(FloatTwin::Imported(Box::new(self.clone()))))
    }
}

/// For each class of the split (in its label order), the model's score index.
fn class_order(model: &[i64], split: &[i64]) -> Result<Vec<usize>> {
    let mut sorted_model = model.to_vec();
    sorted_model.sort_unstable();
    let mut sorted_split = split.to_vec();
    sorted_split.sort_unstable();
    if sorted_model != sorted_split {
        return Err(Error::Compile(format!(
            "the model's classes {model:?} are not the data's {split:?}"
        )));
    }
    Ok(split
        .iter()
        .map(|c| model.iter().position(|m| m == c).expect("same classes"))
        .collect())
}

/// A linear model whose float weights are already on the split's scaled features.
struct Folded(FloatLinearModel);

impl LinearModel for Folded {
    fn float_model(&self, _classes: &[i64]) -> Result<FloatLinearModel> {
        Ok(self.0.clone())
    }
}

fn compile_imported_linear<T>(
    model: &OnnxModel,
    output: &Dense,
    order: Option<&[usize]>,
    split: &Split<T>,
    options: &Options,
) -> Result<CompiledModel> {
    check_width(model, split.n_features())?;
    // Raw x = x_s * std + mean: W x + b = (W diag(std)) x_s + (W mean + b).
    let (mean, std) = (&split.scaler.mean, &split.scaler.std);
    let mut weights = output.weights.clone();
    for mut row in weights.rows_mut() {
        for (w, s) in row.iter_mut().zip(std) {
            *w *= s;
        }
    }
    let bias: Vec<f64> = output.apply(mean);
    let (weights, bias, kind) = match (model.head(), order) {
        (Head::Regression, _) => (weights, bias, OutputKind::Regression),
        (Head::Logistic | Head::Decision, Some(order)) => {
            // One score for the model's second class: negated when the data orders the
            // classes the other way.
            let sign = if order[1] == 1 { 1.0 } else { -1.0 };
            (
                weights * sign,
                bias.iter().map(|b| b * sign).collect(),
                OutputKind::Binary {
                    classes: [split.classes[0], split.classes[1]],
                },
            )
        }
        (Head::Softmax | Head::Argmax, Some(order)) => {
            let rows = Dense { weights, bias }.select_rows(order);
            (
                rows.weights,
                rows.bias,
                OutputKind::Multiclass {
                    classes: split.classes.clone(),
                },
            )
        }
        (head, _) => {
            return Err(Error::Compile(format!(
                "a linear model with a {head:?} head"
            )))
        }
    };
    compile_linear(
        &Folded(FloatLinearModel {
            weights,
            bias,
            kind,
            link: crate::program::Link::Identity,
        }),
        split,
        options.quantization.unwrap_or_default(),
    )
}

fn check_width(model: &OnnxModel, d: usize) -> Result<()> {
    if model.n_features() != d {
        return Err(Error::Compile(format!(
            "the ONNX model reads {} features, the data has {d}",
            model.n_features()
        )));
    }
    Ok(())
}

/// The imported network as an [`Mlp`] with clipped, scaled activations (see the module).
fn imported_mlp<T>(
    model: &OnnxModel,
    hidden: &[Dense],
    output: &Dense,
    order: Option<&[usize]>,
    split: &Split<T>,
    options: &Options,
) -> Result<Mlp> {
    // A regression keeps its one output, in place.
    let identity = [0];
    let order = order.unwrap_or(&identity);
    check_width(model, split.n_features())?;
    let q = options.quantization.unwrap_or_default();
    q.validate()?;
    let config = MlpConfig {
        hidden: hidden.iter().map(Dense::n_outputs).collect(),
        input_bits: q.input_bits,
        activation_bits: IMPORTED_ACTIVATION_BITS,
        weight_bits: IMPORTED_WEIGHT_BITS,
        ..MlpConfig::default()
    };
    config
        .validate_settings()
        .map_err(|e| Error::Compile(e.to_string()))?;
    let quantizer = InputQuantizer::calibrate(&split.train_raw, q.input_bits);
    // Largest output of each hidden neuron on the training rows (float network).
    let mut top: Vec<Vec<f64>> = hidden.iter().map(|l| vec![0.0; l.n_outputs()]).collect();
    for row in split.train_raw.rows() {
        let mut h = row.to_vec();
        for (l, layer) in hidden.iter().enumerate() {
            h = layer.apply(&h).into_iter().map(|v| v.max(0.0)).collect();
            for (t, v) in top[l].iter_mut().zip(&h) {
                *t = t.max(*v);
            }
        }
    }
    // Layers on normalized inputs x_n = (x - low) / (step * max): x = low + x_n * step * max.
    let max = quantizer.max_level() as f64;
    let first = &hidden[0];
    let span: Vec<f64> = quantizer.step.iter().map(|s| s * max).collect();
    let mut layers: Vec<Dense> = Vec::new();
    let mut w0 = first.weights.clone();
    for mut row in w0.rows_mut() {
        for (w, s) in row.iter_mut().zip(&span) {
            *w *= s;
        }
    }
    // A feature constant on the training rows adds a constant: folded into the bias, so an
    // exporter's division by its (near-zero) spread does not blow up the integer weights.
    let mut bias0 = first.apply(&quantizer.low);
    for (i, column) in split.train_raw.columns().into_iter().enumerate() {
        let (lo, hi) = column
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if lo == hi {
            for (o, b) in bias0.iter_mut().enumerate() {
                *b += first.weights[[o, i]] * (lo - quantizer.low[i]);
                w0[[o, i]] = 0.0;
            }
        }
    }
    layers.push(Dense {
        weights: w0,
        bias: bias0,
    });
    layers.extend(hidden[1..].iter().cloned());
    // Binary networks with one logit z: scores [0, z] (the second class when z > 0).
    let mut out = output.clone();
    if out.n_outputs() == 1 && order.len() == 2 {
        let mut w = Array2::zeros((2, out.n_inputs()));
        w.row_mut(1).assign(&out.weights.row(0));
        out = Dense {
            weights: w,
            bias: vec![0.0, out.bias[0]],
        };
    }
    if out.n_outputs() != order.len() {
        return Err(Error::Compile(format!(
            "the network has {} outputs for {} classes",
            out.n_outputs(),
            order.len()
        )));
    }
    layers.push(out);
    // Scale each hidden neuron to [0, 1] on the training rows; the next layer takes it back.
    for l in 0..hidden.len() {
        for (j, &t) in top[l].iter().enumerate() {
            let m = if t > 0.0 { t } else { 1.0 };
            layers[l].weights.row_mut(j).mapv_inplace(|w| w / m);
            layers[l].bias[j] /= m;
            layers[l + 1].weights.column_mut(j).mapv_inplace(|w| w * m);
        }
    }
    // The output rows in the split's class order.
    let last = layers.len() - 1;
    layers[last] = layers[last].select_rows(order);
    let dense = layers
        .iter()
        .map(|l| DenseLayer {
            n_inputs: l.n_inputs(),
            n_outputs: l.n_outputs(),
            // y = x W: W is n_inputs × n_outputs, row-major.
            weights: l.weights.t().iter().map(|&v| v as f32).collect(),
            bias: l.bias.iter().map(|&v| v as f32).collect(),
        })
        .collect();
    let noise = crate::fhe::LeveledParameters::default().bootstrap_noise()?;
    let mut mlp = Mlp {
        config,
        quantizer,
        layers: dense,
        ranges: Vec::new(),
        history: Vec::new(),
        n_classes: order.len(),
        lookup_sigma_positions: noise.lookup_positions(0.0, 1.0),
    };
    mlp.calibrate_ranges(&split.train_raw)?;
    Ok(mlp)
}

/// A regression ensemble with each tree's leaf values centred on zero (the middle of their
/// range moved into the base value): the same predictions, half the range to quantize.
fn center_leaves(ensemble: &TreeEnsemble) -> TreeEnsemble {
    let mut out = ensemble.clone();
    let n = if out.average {
        out.trees.len().max(1) as f64
    } else {
        1.0
    };
    for tree in &mut out.trees {
        let values: Vec<f64> = tree
            .nodes
            .iter()
            .filter_map(|node| match node {
                TreeNode::Leaf { weights } => Some(weights.iter().map(|w| w.1).sum::<f64>()),
                TreeNode::Branch { .. } => None,
            })
            .collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            continue;
        }
        let middle = (lo + hi) / 2.0;
        for node in &mut tree.nodes {
            if let TreeNode::Leaf { weights } = node {
                match weights.first_mut() {
                    Some(w) => w.1 -= middle,
                    None => weights.push((0, -middle)),
                }
            }
        }
        out.base[0] += middle / n;
    }
    out
}

/// Per feature, the sorted distinct cut points of the ensemble's comparisons.
fn cut_points(trees: &TreeEnsemble, d: usize) -> Vec<Vec<f64>> {
    let mut cuts = vec![Vec::new(); d];
    for node in trees.trees.iter().flat_map(|t| &t.nodes) {
        if let TreeNode::Branch {
            feature,
            threshold,
            mode,
            ..
        } = node
        {
            cuts[*feature].push(mode.cut(*threshold).0);
        }
    }
    for c in &mut cuts {
        c.sort_by(f64::total_cmp);
        c.dedup();
    }
    cuts
}

fn compile_trees<T>(
    model: &OnnxModel,
    ensemble: &TreeEnsemble,
    order: Option<&[usize]>,
    split: &Split<T>,
    options: &Options,
) -> Result<CompiledModel> {
    let d = split.n_features();
    check_width(model, d)?;
    let centered;
    let ensemble = if model.head() == Head::Regression {
        centered = center_leaves(ensemble);
        &centered
    } else {
        ensemble
    };
    let cuts = cut_points(ensemble, d);
    let most = cuts.iter().map(Vec::len).max().unwrap_or(0);
    let needed = (2..=5u32)
        .find(|&b| most < (1usize << b))
        .ok_or_else(|| {
            let f = cuts.iter().position(|c| c.len() == most).unwrap_or(0);
            Error::Compile(format!(
                "feature {} ({}) is compared against {most} distinct thresholds; exact encrypted comparisons allow at most 31 per feature (5 bits, tfhe's failure rate); retrain with fewer bins (XGBoost max_bin, or shallower trees)",
                f,
                split.feature_names.get(f).map_or("?", String::as_str)
            ))
        })?;
    // More than 5 bits (the 8-bit default of linear models) means "exact": the fewest bits.
    let bits = match options.quantization {
        None => needed,
        Some(Quantization { input_bits, .. }) if (needed..=5).contains(&input_bits) => input_bits,
        Some(Quantization { input_bits, .. }) if input_bits > 5 => needed,
        Some(Quantization { input_bits, .. }) => {
            return Err(Error::Compile(format!(
                "{input_bits}-bit inputs asked; this ensemble's comparisons are exact at {needed} to 5 bits ({most} thresholds on one feature)"
            )))
        }
    };
    let quantizer = InputQuantizer::binned(cuts.clone(), bits)?;
    // The largest leaf weight, in absolute value.
    let largest = ensemble
        .trees
        .iter()
        .flat_map(|t| &t.nodes)
        .filter_map(|n| match n {
            TreeNode::Leaf { weights } => {
                Some(weights.iter().map(|w| w.1.abs()).fold(0.0, f64::max))
            }
            TreeNode::Branch { .. } => None,
        })
        .fold(0.0, f64::max);
    // Leaf weights become integers of at most LEAF_BITS bits: as many levels as keep every
    // decrypted score exact (a classifier: the fewest that keep its training labels, below) (a lookup's output noise, summed over the leaf lookups, under
    // 3/8 of a unit with probability 1 - 2^-40; tfhe's formulas, `EncodingPlan::noise`).
    let build = |levels: i64| -> Result<CompiledModel> {
        let scale = if largest > 0.0 {
            largest / levels as f64
        } else {
            1.0
        };
        let n_out = ensemble.n_outputs;
        let trees = ensemble
            .trees
            .iter()
            .map(|tree| {
                tree.nodes
                    .iter()
                    .map(|node| match node {
                        TreeNode::Branch {
                            feature,
                            threshold,
                            mode,
                            yes,
                            no,
                        } => {
                            let (c, yes_below) = mode.cut(*threshold);
                            // level = cuts <= x, so x >= c exactly when level > index of c.
                            let j = cuts[*feature].partition_point(|&v| v < c) as i64;
                            let (left, right) = if yes_below { (*yes, *no) } else { (*no, *yes) };
                            LevelNode::Split {
                                feature: *feature,
                                t: j,
                                left,
                                right,
                            }
                        }
                        TreeNode::Leaf { weights } => {
                            let mut values = vec![0i64; n_out];
                            for &(k, w) in weights {
                                values[k] += (w / scale).round() as i64;
                            }
                            LevelNode::Leaf { values }
                        }
                    })
                    .collect()
            })
            .collect();
        let base: Vec<i64> = ensemble
            .base
            .iter()
            .map(|b| (b / scale).round() as i64)
            .collect();
        let identity = |n: usize, order: &[usize]| -> Vec<Vec<i64>> {
            (0..n)
                .map(|k| (0..n).map(|j| i64::from(j == order[k])).collect())
                .collect()
        };
        let (readout, bias, decoder) = match (model.head(), order) {
            (Head::Regression, _) => (
                vec![vec![1]],
                vec![0],
                Decoder {
                    kind: OutputKind::Regression,
                    scale: if ensemble.average {
                        scale / ensemble.trees.len() as f64
                    } else {
                        scale
                    },
                    offset: ensemble.base[0],
                    link: Default::default(),
                },
            ),
            (Head::Logistic | Head::Decision, Some(order)) => {
                let sign = if order[1] == 1 { 1 } else { -1 };
                (
                    vec![vec![sign]],
                    vec![sign * base[0]],
                    Decoder {
                        kind: OutputKind::Binary {
                            classes: [split.classes[0], split.classes[1]],
                        },
                        scale,
                        offset: 0.0,
                        link: Default::default(),
                    },
                )
            }
            (Head::Probability, Some(order)) => {
                // p1 = base + Σ leaves; p0 = 1 - p1.
                let one = (1.0 / scale).round() as i64;
                let rows = [(vec![-1], one - base[0]), (vec![1], base[0])];
                (
                    order.iter().map(|&o| rows[o].0.clone()).collect(),
                    order.iter().map(|&o| rows[o].1).collect(),
                    Decoder {
                        kind: OutputKind::Multiclass {
                            classes: split.classes.clone(),
                        },
                        scale,
                        offset: 0.0,
                        link: Default::default(),
                    },
                )
            }
            (Head::Softmax | Head::Argmax, Some(order)) => (
                identity(n_out, order),
                order.iter().map(|&o| base[o]).collect(),
                Decoder {
                    kind: OutputKind::Multiclass {
                        classes: split.classes.clone(),
                    },
                    scale,
                    offset: 0.0,
                    link: Default::default(),
                },
            ),
            (head, _) => {
                return Err(Error::Compile(format!(
                    "a tree ensemble with a {head:?} head"
                )))
            }
        };
        let kind = format!(
            "imported {}-tree depth-{} ensemble (leaf weights on ±{levels} levels)",
            ensemble.trees.len(),
            ensemble.max_depth()
        );
        compile_level_forest(
            &LevelForest {
                trees,
                n_leaf_outputs: n_out,
                readout,
                bias,
                bits,
                quantizer: quantizer.clone(),
                decoder,
                kind,
            },
            split,
        )
    };
    let exact = |m: &CompiledModel| -> Result<bool> {
        Ok(m.noise()?.score_error_probability <= MAX_SCORE_ERROR)
    };
    let (mut lo, mut hi) = (1i64, (1i64 << (LEAF_BITS - 1)) - 1);
    if exact(&build(hi)?)? {
        return fewest_levels(model, hi, &build, split);
    }
    if !exact(&build(lo)?)? {
        return Err(Error::Compile(format!(
            "{} trees of depth {}: even one level per leaf leaves a decrypted score wrong with probability over 2^-40; use fewer trees",
            ensemble.trees.len(),
            ensemble.max_depth()
        )));
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if exact(&build(mid)?)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    fewest_levels(model, lo, &build, split)
}

/// A classifier's leaf weights on the fewest levels (`most`, halved while it lasts) whose
/// labels agree with the float model on as many training rows as `most` levels do: each
/// non-zero leaf costs a bootstrap, and labels often need far fewer levels than exactness
/// allows. A regression keeps `most`: every level narrows its error.
fn fewest_levels<T>(
    model: &OnnxModel,
    most: i64,
    build: &dyn Fn(i64) -> Result<CompiledModel>,
    split: &Split<T>,
) -> Result<CompiledModel> {
    let best = build(most)?;
    if !model.is_classifier() {
        return Ok(best);
    }
    let rows: Vec<Vec<f64>> = split
        .train_raw
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    let float = rows
        .iter()
        .map(|r| model.class_index(r))
        .collect::<Result<Vec<_>>>()?;
    let agreement = |m: &CompiledModel| -> Result<usize> {
        let mut hits = 0;
        for (r, f) in rows.iter().zip(&float) {
            hits += usize::from(m.predict(r, crate::model::Mode::Clear)?.class_index() == *f);
        }
        Ok(hits)
    };
    let target = agreement(&best)?;
    let mut levels = 1;
    while levels < most {
        let candidate = build(levels)?;
        if agreement(&candidate)? >= target {
            return Ok(candidate);
        }
        levels *= 2;
    }
    Ok(best)
}
