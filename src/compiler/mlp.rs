//! The MLP compiler: a trained network (`train::mlp`) becomes linear layers in bootstrap
//! position units alternating with clipped-ReLU lookups, then linear scores.

use crate::data::Split;
use crate::error::{Error, Result};
use crate::fhe::LeveledParameters;
use crate::model::CompiledModel;
use crate::program::{Decoder, LinearLayer, LookupLayer, OutputKind, Program, Step, TableFunction};
use crate::quant::{quantize_symmetric, Quantization};
use crate::train::mlp::{half_circle_units, Mlp};

/// Sub-position bits of the first lookup's input: the first layer's integer weights are in
/// 1/64 of a bootstrap position, so rounding them costs far less than the bootstrap's noise.
pub const FIRST_LOOKUP_SHIFT: u32 = 6;
/// Sub-position bits of the scale of later lookups (their weights are few-bit integers).
pub const LATER_LOOKUP_SHIFT: u32 = 8;

/// A ReLU clipped to `levels` steps for a neuron with `per_unit` positions per activation unit:
/// thresholds where `round(y * levels)` steps up, and the window that puts every threshold in
/// the first half of the circle and leaves the most room below (see `program::TableFunction`).
fn clipped_relu(per_unit: f64, levels: u32, half: i64) -> TableFunction {
    let thresholds: Vec<i64> = (1..=levels)
        .map(|m| ((m as f64 - 0.5) / levels as f64 * per_unit).ceil() as i64)
        .collect();
    let top = *thresholds.last().expect("levels >= 1");
    TableFunction::staircase(top - (half - 1), &thresholds)
}

/// Compiles a trained MLP into the integer program the encrypted interpreter runs:
/// linear (in sub-position units, per-neuron scaled so each neuron's training range fills
/// `range_fill` of its lookup circle), lookup, and for each further layer its few-bit integer
/// weights (exactly the training's fake quantization), lookup, ..., linear scores.
///
/// # Errors
///
/// `Error::Compile` if the MLP's layers and activation ranges disagree, or the program is
/// invalid or does not fit the parameter set.
pub fn compile_mlp(mlp: &Mlp, split: &Split<usize>) -> Result<CompiledModel> {
    compile_mlp_as(
        mlp,
        split,
        OutputKind::Multiclass {
            classes: split.classes.clone(),
        },
    )
}

/// [`compile_mlp`] with the scores read as `kind` (one output read as a regression value, for
/// an imported network regression).
pub(crate) fn compile_mlp_as<T>(
    mlp: &Mlp,
    split: &Split<T>,
    kind: OutputKind,
) -> Result<CompiledModel> {
    let cfg = &mlp.config;
    let levels = cfg.levels();
    let params = LeveledParameters::default();
    let half = params.polynomial_size as i64;
    let positions = params.positions();
    let fill = cfg.range_fill;
    let n_hidden = cfg.hidden.len();
    if mlp.layers.len() != n_hidden + 1 || mlp.ranges.len() != n_hidden {
        return Err(Error::Compile(
            "the MLP's layers and ranges disagree".into(),
        ));
    }
    let per_unit =
        |range: (f64, f64)| (half - 1) as f64 * fill / half_circle_units(range, levels as f64);
    let mut steps = Vec::new();

    // First layer: y_o = sum_i W[i][o] * q_i / max_in + b_o, placed at per_unit(o) positions
    // per unit and 2^FIRST_LOOKUP_SHIFT integers per position.
    let first = &mlp.layers[0];
    let max_in = mlp.quantizer.max_level() as f64;
    let sub = (1u64 << FIRST_LOOKUP_SHIFT) as f64;
    let p: Vec<f64> = mlp.ranges[0].iter().map(|&r| per_unit(r)).collect();
    let mut weights = Vec::with_capacity(first.n_inputs * first.n_outputs);
    for (o, &po) in p.iter().enumerate() {
        for i in 0..first.n_inputs {
            let w = first.weights[i * first.n_outputs + o] as f64;
            weights.push((w * po * sub / max_in).round() as i64);
        }
    }
    let bias = first
        .bias
        .iter()
        .zip(&p)
        .map(|(&b, &po)| (b as f64 * po * sub).round() as i64)
        .collect();
    steps.push(Step::Linear(LinearLayer::new(
        first.n_inputs,
        first.n_outputs,
        weights,
        bias,
    )?));
    steps.push(Step::Lookup(LookupLayer {
        positions,
        scale_num: 1,
        scale_shift: FIRST_LOOKUP_SHIFT,
        mirror: levels as i64,
        neurons: p.iter().map(|&po| clipped_relu(po, levels, half)).collect(),
    }));

    // Later layers: integer weights w = round(W / s) as in training; y = (s/levels) * z + b.
    let mut decoder_scale = 1.0;
    for l in 1..=n_hidden {
        let layer = &mlp.layers[l];
        let transposed: Vec<f64> = (0..layer.n_outputs)
            .flat_map(|o| (0..layer.n_inputs).map(move |i| (i, o)))
            .map(|(i, o)| layer.weights[i * layer.n_outputs + o] as f64)
            .collect();
        let (weights, s) = quantize_symmetric(&transposed, cfg.weight_bits);
        let unit = s / levels as f64;
        let bias = layer
            .bias
            .iter()
            .map(|&b| (b as f64 / unit).round() as i64)
            .collect();
        steps.push(Step::Linear(LinearLayer::new(
            layer.n_inputs,
            layer.n_outputs,
            weights,
            bias,
        )?));
        if l < n_hidden {
            // One scale for the whole layer: the narrowest neuron's positions per unit.
            let p = mlp.ranges[l]
                .iter()
                .map(|&r| per_unit(r))
                .fold(f64::INFINITY, f64::min);
            let num = ((p * unit) * (1u64 << LATER_LOOKUP_SHIFT) as f64)
                .round()
                .max(1.0);
            let p_eff = num / (1u64 << LATER_LOOKUP_SHIFT) as f64 / unit;
            steps.push(Step::Lookup(LookupLayer {
                positions,
                scale_num: num as i64,
                scale_shift: LATER_LOOKUP_SHIFT,
                mirror: levels as i64,
                neurons: (0..layer.n_outputs)
                    .map(|_| clipped_relu(p_eff, levels, half))
                    .collect(),
            }));
        } else {
            decoder_scale = unit;
        }
    }
    let program = Program {
        n_inputs: first.n_inputs,
        input_bits: cfg.input_bits,
        steps,
    };
    let decoder = Decoder {
        kind,
        scale: decoder_scale,
        offset: 0.0,
        link: Default::default(),
    };
    let quantization = Quantization {
        input_bits: cfg.input_bits,
        weight_bits: cfg.weight_bits,
    };
    let widths: Vec<String> = std::iter::once(first.n_inputs)
        .chain(mlp.layers.iter().map(|l| l.n_outputs))
        .map(|w| w.to_string())
        .collect();
    let description = format!(
        "{} MLP: ReLU clipped to {levels} levels by bootstrapping, {}-bit inputs, {}-bit weights after the first layer",
        widths.join("-"),
        cfg.input_bits,
        cfg.weight_bits
    );
    CompiledModel::new(
        split,
        quantization,
        mlp.quantizer.clone(),
        program,
        decoder,
        description,
    )
}
