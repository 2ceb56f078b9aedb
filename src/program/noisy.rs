//! The noisy interpreter (Concrete ML's "simulate"): the clear interpreter with the Gaussian
//! noise tfhe's formulas give each bootstrap ([`EncodingPlan::noise`]), for estimating how often
//! encrypted results differ from the clear twin's without encrypting. Leveled programs have no
//! such noise: there it equals the clear interpreter.

use rand::Rng;

use crate::error::Result;
use crate::fhe::label::top_labels;
use crate::fhe::stats::normal_cdf;
use crate::fhe::EncodingPlan;
use crate::program::{Program, Step};

/// One run with noise: each lookup reads a position moved by Gaussian noise (every read of a
/// neuron sees its bootstrap's one draw), each score gets its Gaussian noise and is rounded, and
/// a label head ranks the noisy scores (its own comparisons fail with probability
/// [`crate::fhe::LabelHead::failure_probability`], below 1e-9: not drawn). `x` holds `n_inputs`
/// quantized levels; the result is shaped as [`Program::simulate`]'s.
///
/// # Errors
///
/// `Error::Input` for `x` of the wrong length or range; `Error::Compile` (or `Error::Wire` for
/// an unknown parameter set) if the plan's noise cannot be computed for the program.
pub fn simulate_noisy<R: Rng>(
    program: &Program,
    plan: &EncodingPlan,
    x: &[u64],
    rng: &mut R,
) -> Result<Vec<i64>> {
    if program.lookup_layers().next().is_none() {
        return program.simulate(x);
    }
    program.check_input(x)?;
    let noise = plan.noise(program)?;
    let mut gaussian = || {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut values: Vec<i64> = x.iter().map(|&v| v as i64).collect();
    let mut lookup = 0;
    for step in program.score_steps() {
        values = match step {
            Step::Linear(l) => l.apply(&values),
            Step::Lookup(l) => {
                let sigma = noise.lookup_sigma_positions[lookup];
                lookup += 1;
                let scale = l.scale_num as f64 / (1u64 << l.scale_shift) as f64;
                let mut out = Vec::with_capacity(l.n_outputs());
                for (f, &v) in l.neurons.iter().zip(&values) {
                    let p = (v as f64 * scale + sigma * gaussian() + 0.5).floor() as i64;
                    out.extend(f.reads.iter().map(|&r| l.read(f, p + r)));
                }
                out
            }
            Step::Label(_) => values,
        };
    }
    let scores: Vec<i64> = values
        .into_iter()
        .map(|v| v + (noise.score_sigma * gaussian()).round() as i64)
        .collect();
    Ok(match program.head() {
        None => scores,
        Some(head) => top_labels(&scores, head.top)
            .into_iter()
            .map(|label| label as i64)
            .collect(),
    })
}

/// Expected number of lookups, per lookup layer, whose encrypted output differs from the clear
/// twin's for input `x` (`n_inputs` quantized levels): for each neuron, the probability that
/// its bootstrap's noise moves its position across a step of its function. Later layers are
/// taken from their clean inputs (a first-order estimate). One expectation (a count of
/// lookups) per lookup layer, in program order.
///
/// # Errors
///
/// As [`simulate_noisy`].
pub fn expected_lookup_mismatches(
    program: &Program,
    plan: &EncodingPlan,
    x: &[u64],
) -> Result<Vec<f64>> {
    let noise = plan.noise(program)?;
    let mut out = Vec::new();
    for (k, step) in program.steps.iter().enumerate() {
        let Step::Lookup(layer) = step else { continue };
        let sigma = noise.lookup_sigma_positions[out.len()];
        let z = program.simulate_until(x, k)?;
        let reach = (6.0 * sigma).ceil() as i64 + 1;
        let scale = layer.scale_num as f64 / (1u64 << layer.scale_shift) as f64;
        let mut expected = 0.0;
        for (neuron, &v) in layer.neurons.iter().zip(&z) {
            let p_real = v as f64 * scale;
            let p0 = layer.position(v);
            let offset = p_real - (p_real + 0.5).floor();
            for &r in &neuron.reads {
                let clean = layer.read(neuron, p0 + r);
                for d in -reach..=reach {
                    if d != 0 && layer.read(neuron, p0 + r + d) != clean {
                        let lo = (d as f64 - 0.5 - offset) / sigma;
                        let hi = (d as f64 + 0.5 - offset) / sigma;
                        expected += normal_cdf(hi) - normal_cdf(lo);
                    }
                }
            }
        }
        out.push(expected);
    }
    Ok(out)
}
