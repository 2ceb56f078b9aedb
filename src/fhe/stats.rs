//! Normal-distribution helpers for the noise formulas: tails and the distribution function
//! (shared by the encoding plan and the label head, so neither depends on the other).

/// Tail of the standard normal: P(|X| >= t) (Abramowitz-Stegun 7.1.26, ample for reports).
pub fn two_sided_tail(t: f64) -> f64 {
    if t <= 0.0 {
        return 1.0;
    }
    let x = t / std::f64::consts::SQRT_2;
    let k = 1.0 / (1.0 + 0.3275911 * x);
    let poly = k
        * (0.254829592
            + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429))));
    (poly * (-x * x).exp()).min(1.0)
}

/// Standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 - 0.5 * two_sided_tail(x)
    } else {
        0.5 * two_sided_tail(-x)
    }
}
