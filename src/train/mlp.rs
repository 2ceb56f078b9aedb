//! Training a multilayer perceptron on plaintext with candle, aware of what encryption will do
//! to it: inputs quantized as the client quantizes them, activations clipped and quantized to
//! the levels a bootstrapped lookup returns, weights of layers fed by bootstraps quantized to
//! few bits (their noise grows with the weights), and Gaussian noise of the size tfhe's noise
//! formulas give for a lookup added to every pre-activation while training, so the network
//! learns margins that the encrypted twin keeps.
//!
//! candle (Hugging Face's minimalist tensor library, CPU backend) was chosen over burn: it
//! builds in about a minute on 2 cores with no C dependencies, has reverse-mode autodiff and
//! AdamW, and does not pull a second ndarray into the tree.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::quant::InputQuantizer;

/// Architecture, quantization and training settings of an MLP classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Hidden layer widths, e.g. `[32]` for 64-32-10 on digits.
    pub hidden: Vec<usize>,
    /// Bits per input feature (the client's quantizer).
    pub input_bits: u32,
    /// Bits of each hidden activation: a ReLU clipped to `2^bits - 1` levels.
    pub activation_bits: u32,
    /// Bits of the weights of layers fed by bootstraps (all but the first).
    pub weight_bits: u32,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per AdamW step (mini-batch size).
    pub batch_size: usize,
    /// AdamW's learning rate (a tenth of it for the last quarter of the epochs).
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Train with the bootstrap noise (noise-aware training), scaled by this factor (0: off).
    pub noise_scale: f64,
    /// Fraction of a lookup's circle the training range may fill; the rest is headroom for
    /// unseen inputs.
    pub range_fill: f64,
    /// Seed of the initial weights, the shuffling and the training noise (ChaCha8).
    pub seed: u64,
    /// Fraction of each hidden layer's neurons removed once three quarters of the epochs are
    /// done (the least important first: mean activation on the training rows times the L1
    /// norm of the outgoing weights); the last quarter fine-tunes what is left. Every hidden
    /// neuron is one bootstrap per inference, so 0.25 takes 64-32-10 to 24 bootstraps.
    /// Models saved before issue 19 read as 0 (not pruned).
    #[serde(default)]
    pub prune: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![32],
            input_bits: 8,
            activation_bits: 3,
            weight_bits: 4,
            epochs: 120,
            batch_size: 32,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            noise_scale: 1.0,
            range_fill: 0.85,
            seed: 42,
            prune: 0.25,
        }
    }
}

impl MlpConfig {
    /// The top activation level, `2^activation_bits - 1`: hidden activations take the
    /// values `k / levels` for `k` in `0..=levels`.
    pub fn levels(&self) -> u32 {
        (1 << self.activation_bits) - 1
    }

    /// Checks the settings and that there are features to train on.
    ///
    /// # Errors
    /// `Error::Training` naming the first setting out of range, or no features.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        self.validate_settings()?;
        if n_features == 0 {
            return Err(Error::Training("no features".into()));
        }
        Ok(())
    }

    /// Checks the settings alone (what `MlpParams` checks before any data is seen).
    ///
    /// # Errors
    /// `Error::Training` naming the first setting out of range.
    pub fn validate_settings(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Training(m.to_string()));
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h == 0 || h > 1024) {
            return bad("hidden layer widths must be between 1 and 1024");
        }
        if !(1..=6).contains(&self.activation_bits) {
            return bad("activation bits must be between 1 and 6");
        }
        if !(2..=8).contains(&self.weight_bits) || !(2..=16).contains(&self.input_bits) {
            return bad("weight bits must be 2..=8 and input bits 2..=16");
        }
        if self.epochs == 0
            || self.batch_size == 0
            || self.learning_rate.is_nan()
            || self.learning_rate <= 0.0
        {
            return bad("epochs, batch size and learning rate must be positive");
        }
        if !(0.0..=10.0).contains(&self.noise_scale) {
            return bad("noise scale must be between 0 and 10");
        }
        if !(0.1..=1.0).contains(&self.range_fill) {
            return bad("range fill must be between 0.1 and 1");
        }
        if !(0.0..0.95).contains(&self.prune) {
            return bad("prune must be a fraction from 0 to 0.95");
        }
        Ok(())
    }
}

/// One dense layer in float: `y = x W + b`, `W` is `n_inputs × n_outputs`, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseLayer {
    /// Inputs: the previous layer's width (`n_features` for the first).
    pub n_inputs: usize,
    /// Outputs: neurons (`n_classes` for the last).
    pub n_outputs: usize,
    /// `W`, `n_inputs × n_outputs`, row-major.
    pub weights: Vec<f32>,
    /// `b`, one per output (`n_outputs`).
    pub bias: Vec<f32>,
}

/// Loss and accuracy after one epoch (the training curve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's mini-batches (quantized, with training noise).
    pub loss: f64,
    /// Accuracy on the training rows after the epoch (quantized network, no noise), in
    /// `[0, 1]`.
    pub train_accuracy: f64,
}

/// A trained MLP: float weights, the input quantizer it was trained on, per-neuron ranges of
/// the pre-activations on the training set, and its training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// The settings it was trained with.
    pub config: MlpConfig,
    /// The client's input quantizer, calibrated on the raw training rows.
    pub quantizer: InputQuantizer,
    /// Dense layers, input to output (one per hidden layer, then the output layer).
    pub layers: Vec<DenseLayer>,
    /// Per hidden layer, per neuron: (min, max) pre-activation over the training rows, in
    /// activation units (1.0 = the top level).
    pub ranges: Vec<Vec<(f64, f64)>>,
    /// Loss and accuracy per epoch: the training curve.
    pub history: Vec<EpochStats>,
    /// Classes: the output layer's width.
    pub n_classes: usize,
    /// Noise of a lookup, in positions (from tfhe's formulas), used while training.
    pub lookup_sigma_positions: f64,
}

fn ce<E: std::fmt::Display>(e: E) -> Error {
    Error::Training(e.to_string())
}

/// Symmetric per-tensor quantization with a straight-through gradient.
fn fake_quant_weights(w: &Tensor, bits: u32) -> candle_core::Result<Tensor> {
    let max_int = ((1i64 << (bits - 1)) - 1) as f64;
    let max_abs = w.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    if max_abs == 0.0 {
        return Ok(w.clone());
    }
    let scale = max_abs / max_int;
    let q = (w.affine(1.0 / scale, 0.0)?.round()?.affine(scale, 0.0)? - w)?.detach();
    w + q
}

/// ReLU clipped to `[0, 1]`, rounded to `levels` steps, with a straight-through gradient.
fn fake_quant_activation(y: &Tensor, levels: f64) -> candle_core::Result<Tensor> {
    let a = y.clamp(0f32, 1f32)?;
    let q = (a.affine(levels, 0.0)?.round()?.affine(1.0 / levels, 0.0)? - &a)?.detach();
    a + q
}

/// Standard normal samples (Box-Muller) from a seeded generator.
fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// Half-width, in activation units, a neuron's lookup circle must cover (see
/// `compile_mlp`): the circle's first half holds every threshold, its second half the
/// saturated values, so `max(1 - 1/(2A) - min, max - 1/(2A))` units map to `N` positions.
pub fn half_circle_units(range: (f64, f64), levels: f64) -> f64 {
    let half_step = 0.5 / levels;
    (1.0 - half_step - range.0)
        .max(range.1 - half_step)
        .max(1.0)
}

/// Standard deviation, in float logits, of the scores an output layer with these weights
/// (`n_inputs × n_outputs`) returns: bootstrap outputs' noise through the quantized weights,
/// at the largest delta the scores' range allows (as `EncodingPlan` places them).
fn score_sigma(w: &[Vec<f32>], b: &[f32], config: &MlpConfig, output_std: f64) -> f64 {
    let levels = config.levels() as f64;
    let max_int = ((1i64 << (config.weight_bits - 1)) - 1) as f64;
    let max_abs = w.iter().flatten().fold(0f64, |m, &v| m.max(v.abs() as f64));
    if max_abs == 0.0 {
        return 0.0;
    }
    let scale = max_abs / max_int;
    let unit = scale / levels;
    let mut worst_score = 0f64;
    let mut worst_norm = 0f64;
    for (o, &bias) in b.iter().enumerate() {
        let ints: Vec<f64> = w
            .iter()
            .map(|row| (row[o] as f64 / scale).round())
            .collect();
        let reach = ints.iter().map(|v| v.abs()).sum::<f64>() * levels + (bias as f64 / unit).abs();
        worst_score = worst_score.max(reach);
        worst_norm = worst_norm.max(ints.iter().map(|v| v * v).sum::<f64>().sqrt());
    }
    let delta = 2f64.powi(63 - (worst_score + 1.0).log2().ceil() as i32);
    output_std * worst_norm / delta * unit
}

struct Network {
    weights: Vec<Var>,
    biases: Vec<Var>,
}

impl Network {
    /// Forward pass on normalized inputs. With `noise`, each hidden pre-activation gets
    /// Gaussian noise of the given per-neuron standard deviation; returns the logits and the
    /// pre-activations of every hidden layer.
    fn forward(
        &self,
        x: &Tensor,
        config: &MlpConfig,
        noise: Option<(&mut ChaCha8Rng, &[Vec<f32>])>,
        quantized: bool,
    ) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let levels = config.levels() as f64;
        let mut h = x.clone();
        let mut pre = Vec::new();
        let last = self.weights.len() - 1;
        let mut noise = noise;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let w = if l > 0 && quantized {
                fake_quant_weights(w.as_tensor(), config.weight_bits)?
            } else {
                w.as_tensor().clone()
            };
            let y = h.matmul(&w)?.broadcast_add(b.as_tensor())?;
            if l == last {
                // Scores get the bootstrap outputs' noise too (last entry of `sigmas`).
                let y = match noise.as_mut() {
                    Some((rng, sigmas)) if sigmas.len() > l => {
                        let (rows, cols) = y.dims2()?;
                        let z =
                            Tensor::from_vec(normals(rng, rows * cols), (rows, cols), y.device())?;
                        (&y + z.affine(sigmas[l][0] as f64, 0.0)?)?
                    }
                    _ => y,
                };
                return Ok((y, pre));
            }
            let y_noisy = match noise.as_mut() {
                Some((rng, sigmas)) => {
                    let (rows, cols) = y.dims2()?;
                    let z = normals(rng, rows * cols);
                    let z = Tensor::from_vec(z, (rows, cols), y.device())?;
                    let s = Tensor::from_slice(&sigmas[l], cols, y.device())?;
                    (&y + z.broadcast_mul(&s)?)?
                }
                None => y.clone(),
            };
            pre.push(y);
            h = if quantized {
                fake_quant_activation(&y_noisy, levels)?
            } else {
                y_noisy.clamp(0f32, 1f32)?
            };
        }
        unreachable!("the last layer returns")
    }
}

fn to_tensor(rows: &[Vec<f32>], device: &Device) -> candle_core::Result<Tensor> {
    let cols = rows.first().map_or(0, |r| r.len());
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), cols), device)
}

impl Mlp {
    /// Inputs as the network sees them: quantized levels divided by the top level.
    pub fn normalize_quantized(&self, row: &[f64]) -> Vec<f32> {
        let max = self.quantizer.max_level() as f32;
        self.quantizer
            .quantize(row)
            .values
            .iter()
            .map(|&q| q as f32 / max)
            .collect()
    }

    /// Inputs for the float twin: the same affine map, unrounded and clipped to `[0, 1]`.
    pub fn normalize_float(&self, row: &[f64]) -> Vec<f32> {
        let max = self.quantizer.max_level() as f64;
        row.iter()
            .enumerate()
            .map(|(j, &x)| {
                (((x - self.quantizer.low[j]) / (self.quantizer.step[j] * max)).clamp(0.0, 1.0))
                    as f32
            })
            .collect()
    }

    fn network(&self, device: &Device) -> Result<Network> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for l in &self.layers {
            weights.push(
                Var::from_tensor(
                    &Tensor::from_slice(&l.weights, (l.n_inputs, l.n_outputs), device)
                        .map_err(ce)?,
                )
                .map_err(ce)?,
            );
            biases.push(
                Var::from_tensor(&Tensor::from_slice(&l.bias, l.n_outputs, device).map_err(ce)?)
                    .map_err(ce)?,
            );
        }
        Ok(Network { weights, biases })
    }

    /// Logits of the float network for raw rows (`n_rows` rows of `n_features`): one
    /// `n_classes` vector per row.
    ///
    /// # Errors
    /// `Error::Training` when a candle tensor operation fails (rows of different lengths).
    pub fn predict_logits(&self, raw_rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let device = Device::Cpu;
        let net = self.network(&device)?;
        let rows: Vec<Vec<f32>> = raw_rows.iter().map(|r| self.normalize_float(r)).collect();
        let x = to_tensor(&rows, &device).map_err(ce)?;
        let (logits, _) = net.forward(&x, &self.config, None, false).map_err(ce)?;
        Ok(logits
            .to_vec2::<f32>()
            .map_err(ce)?
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect())
    }

    /// Class predictions of the float network (plain ReLU clipped to `[0, 1]`, float
    /// weights, unquantized inputs): the plaintext model, one class index per row.
    ///
    /// # Errors
    /// `Error::Training` when a candle tensor operation fails (rows of different lengths).
    pub fn predict_float(&self, raw_rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        let device = Device::Cpu;
        let net = self.network(&device)?;
        let rows: Vec<Vec<f32>> = raw_rows.iter().map(|r| self.normalize_float(r)).collect();
        let x = to_tensor(&rows, &device).map_err(ce)?;
        let (logits, _) = net.forward(&x, &self.config, None, false).map_err(ce)?;
        let idx = logits.argmax(D::Minus1).map_err(ce)?;
        Ok(idx
            .to_vec1::<u32>()
            .map_err(ce)?
            .into_iter()
            .map(|i| i as usize)
            .collect())
    }

    /// Measures [`Mlp::ranges`] on raw rows (`n_rows × n_features`) with the quantized network,
    /// as training does at its end: what a network quantized after training (an imported one)
    /// needs before `compile_mlp`.
    ///
    /// # Errors
    /// `Error::Training` when a candle tensor operation fails (rows of the wrong width).
    pub fn calibrate_ranges(&mut self, raw: &ndarray::Array2<f64>) -> Result<()> {
        let device = Device::Cpu;
        let net = self.network(&device)?;
        let rows: Vec<Vec<f32>> = raw
            .rows()
            .into_iter()
            .map(|r| self.normalize_quantized(&r.to_vec()))
            .collect();
        let x = to_tensor(&rows, &device).map_err(ce)?;
        self.ranges = Self::measure_ranges(&net, &x, &self.config)?;
        Ok(())
    }

    /// Copies the trained weights out of candle's variables into `layers`.
    fn read_weights(&mut self, net: &Network) -> Result<()> {
        for (layer, (w, b)) in self
            .layers
            .iter_mut()
            .zip(net.weights.iter().zip(&net.biases))
        {
            layer.weights = w
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(ce)?;
            layer.bias = b.as_tensor().to_vec1::<f32>().map_err(ce)?;
        }
        Ok(())
    }

    /// Removes `config.prune` of each hidden layer's neurons (at least one kept): those with
    /// the smallest mean quantized activation over `x` times the L1 norm of their outgoing
    /// weights, i.e. the least they add to the next layer. Updates `config.hidden`.
    fn prune(&mut self, net: &Network, x: &Tensor) -> Result<()> {
        let levels = self.config.levels() as f64;
        let (_, pre) = net.forward(x, &self.config, None, true).map_err(ce)?;
        for (l, pre) in pre.iter().enumerate() {
            let mean = fake_quant_activation(pre, levels)
                .and_then(|a| a.mean(0))
                .and_then(|m| m.to_vec1::<f32>())
                .map_err(ce)?;
            let (width, next) = (self.layers[l].n_outputs, &self.layers[l + 1]);
            let importance: Vec<f64> = (0..width)
                .map(|j| {
                    let out: f32 = next.weights[j * next.n_outputs..(j + 1) * next.n_outputs]
                        .iter()
                        .map(|w| w.abs())
                        .sum();
                    (mean[j] * out) as f64
                })
                .collect();
            let keep_n = ((width as f64 * (1.0 - self.config.prune)).round() as usize).max(1);
            let mut order: Vec<usize> = (0..width).collect();
            order.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
            let mut keep = order[..keep_n].to_vec();
            keep.sort_unstable();
            let layer = &mut self.layers[l];
            let n_in = layer.n_inputs;
            layer.weights = (0..n_in)
                .flat_map(|i| keep.iter().map(move |&j| (i, j)))
                .map(|(i, j)| layer.weights[i * width + j])
                .collect();
            layer.bias = keep.iter().map(|&j| layer.bias[j]).collect();
            layer.n_outputs = keep_n;
            let next = &mut self.layers[l + 1];
            let n_out = next.n_outputs;
            next.weights = keep
                .iter()
                .flat_map(|&j| next.weights[j * n_out..(j + 1) * n_out].to_vec())
                .collect();
            next.n_inputs = keep_n;
            self.config.hidden[l] = keep_n;
        }
        Ok(())
    }

    /// Per hidden layer, per neuron (min, max) pre-activation over `rows` (normalized,
    /// quantized network, no noise).
    fn measure_ranges(
        net: &Network,
        x: &Tensor,
        config: &MlpConfig,
    ) -> Result<Vec<Vec<(f64, f64)>>> {
        let (_, pre) = net.forward(x, config, None, true).map_err(ce)?;
        pre.iter()
            .map(|y| {
                let lo = y.min(0).map_err(ce)?.to_vec1::<f32>().map_err(ce)?;
                let hi = y.max(0).map_err(ce)?.to_vec1::<f32>().map_err(ce)?;
                Ok(lo
                    .iter()
                    .zip(&hi)
                    .map(|(&a, &b)| (a as f64, b as f64))
                    .collect())
            })
            .collect()
    }
}

/// Trains an MLP classifier on the split's training rows (raw, quantized by a quantizer
/// calibrated on them), deterministically for `config.seed`.
///
/// # Errors
/// `Error::Training` for invalid settings, no features, fewer than two classes, a failed
/// candle operation, or a diverged training (non-finite weights).
pub fn fit_mlp(split: &Split<usize>, config: &MlpConfig) -> Result<Mlp> {
    let d = split.n_features();
    config.validate(d)?;
    let n_classes = split.classes.len();
    if n_classes < 2 {
        return Err(Error::Training(
            "an MLP classifier needs two classes or more".into(),
        ));
    }
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let quantizer = InputQuantizer::calibrate(&split.train_raw, config.input_bits);
    let noise = crate::fhe::LeveledParameters::default().bootstrap_noise()?;
    let lookup_sigma_positions = noise.lookup_positions(0.0, 1.0);
    let output_std = noise.output_std;

    // Layers: He-uniform initial weights from the seeded generator.
    let mut widths = vec![d];
    widths.extend(&config.hidden);
    widths.push(n_classes);
    let layers: Vec<DenseLayer> = widths
        .windows(2)
        .map(|w| {
            let bound = (6.0 / w[0] as f64).sqrt() as f32;
            DenseLayer {
                n_inputs: w[0],
                n_outputs: w[1],
                weights: (0..w[0] * w[1])
                    .map(|_| rng.gen_range(-bound..bound))
                    .collect(),
                bias: vec![0.0; w[1]],
            }
        })
        .collect();
    let mut mlp = Mlp {
        config: config.clone(),
        quantizer,
        layers,
        ranges: Vec::new(),
        history: Vec::new(),
        n_classes,
        lookup_sigma_positions,
    };
    let rows: Vec<Vec<f32>> = split
        .train_raw
        .rows()
        .into_iter()
        .map(|r| mlp.normalize_quantized(&r.to_vec()))
        .collect();
    let targets: Vec<u32> = split.train.targets().iter().map(|&t| t as u32).collect();
    let x_all = to_tensor(&rows, &device).map_err(ce)?;
    let mut net = mlp.network(&device)?;
    let adam = |net: &Network, lr: f64| {
        let mut vars = net.weights.clone();
        vars.extend(net.biases.iter().cloned());
        AdamW::new(
            vars,
            ParamsAdamW {
                lr,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
        )
        .map_err(ce)
    };
    let mut optimizer = adam(&net, config.learning_rate)?;
    let levels = config.levels() as f64;
    let n = rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 0..config.epochs {
        // Learning rate: constant, then a tenth for the last quarter, after pruning.
        if epoch == config.epochs * 3 / 4 {
            if config.prune > 0.0 {
                mlp.read_weights(&net)?;
                mlp.prune(&net, &x_all)?;
                net = mlp.network(&device)?;
                optimizer = adam(&net, config.learning_rate / 10.0)?;
            } else {
                optimizer.set_learning_rate(config.learning_rate / 10.0);
            }
        }
        // Noise per neuron from this epoch's ranges: a lookup reads positions with standard
        // deviation sigma; a neuron's half circle of N positions spans `half_circle_units`.
        let sigmas: Vec<Vec<f32>> = if config.noise_scale > 0.0 {
            let half_positions =
                crate::fhe::LeveledParameters::default().polynomial_size as f64 * config.range_fill;
            Mlp::measure_ranges(&net, &x_all, &mlp.config)?
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|&r| {
                            (config.noise_scale
                                * lookup_sigma_positions
                                * half_circle_units(r, levels)
                                / half_positions) as f32
                        })
                        .collect()
                })
                .collect()
        } else {
            mlp.config.hidden.iter().map(|&h| vec![0.0; h]).collect()
        };
        let mut sigmas = sigmas;
        if config.noise_scale > 0.0 {
            let last = net.weights.len() - 1;
            let w = net.weights[last].as_tensor().to_vec2::<f32>().map_err(ce)?;
            let b = net.biases[last].as_tensor().to_vec1::<f32>().map_err(ce)?;
            sigmas.push(vec![
                (config.noise_scale * score_sigma(&w, &b, config, output_std)) as f32,
            ]);
        }
        for i in (1..n).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let mut loss_sum = 0.0;
        for batch in order.chunks(config.batch_size) {
            let xb = to_tensor(
                &batch.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>(),
                &device,
            )
            .map_err(ce)?;
            let yb = Tensor::from_vec(
                batch.iter().map(|&i| targets[i]).collect::<Vec<u32>>(),
                batch.len(),
                &device,
            )
            .map_err(ce)?;
            let (logits, _) = net
                .forward(&xb, &mlp.config, Some((&mut rng, &sigmas)), true)
                .map_err(ce)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &yb).map_err(ce)?;
            optimizer.backward_step(&loss).map_err(ce)?;
            loss_sum += loss.to_scalar::<f32>().map_err(ce)? as f64 * batch.len() as f64;
        }
        let (logits, _) = net.forward(&x_all, &mlp.config, None, true).map_err(ce)?;
        let predicted = logits
            .argmax(D::Minus1)
            .map_err(ce)?
            .to_vec1::<u32>()
            .map_err(ce)?;
        let hits = predicted
            .iter()
            .zip(&targets)
            .filter(|(p, t)| p == t)
            .count();
        mlp.history.push(EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / n as f64,
            train_accuracy: hits as f64 / n as f64,
        });
    }
    mlp.read_weights(&net)?;
    mlp.ranges = Mlp::measure_ranges(&net, &x_all, &mlp.config)?;
    if mlp
        .layers
        .iter()
        .any(|l| l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()))
    {
        return Err(Error::Training(
            "training diverged (non-finite weights)".into(),
        ));
    }
    Ok(mlp)
}
