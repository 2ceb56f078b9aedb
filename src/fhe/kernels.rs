//! The leveled LWE/GLWE kernels, on tfhe's core_crypto random generators.
//!
//! Inputs: a client packs its `d` quantized features as the first `d` coefficients of one GLWE
//! plaintext polynomial (k = 1) and sends only the mask's seed and the first `d` body
//! coefficients, rounded. Dropping and rounding body coefficients is public post-processing of
//! an RLWE sample, so security is that of the parameter set. Coefficient `i`, extracted as an
//! LWE ciphertext, has mask `a_i[j] = A[i-j]` (negacyclic); with the key reversed,
//! `<a_i, s> = <F[i..i+N], s_rev>` for one extended array `F`, so every dot product the client
//! and server compute is over contiguous memory.

use tfhe::core_crypto::commons::math::random::{DefaultRandomGenerator, RandomGenerator, Seed};

use crate::error::{Error, Result};

/// The GLWE mask `A` (N uniform 64-bit coefficients), expanded from its public seed with
/// tfhe's CSPRNG, exactly as tfhe decompresses seeded ciphertexts.
pub fn expand_mask(seed: u128, polynomial_size: usize) -> Vec<u64> {
    let mut mask = vec![0u64; polynomial_size];
    RandomGenerator::<DefaultRandomGenerator>::new(Seed(seed))
        .fill_slice_with_random_uniform(&mut mask);
    mask
}

/// `F = [-A[1], ..., -A[N-1], A[0], ..., A[d-1]]`: the masks of the first `d` extracted
/// coefficients, as windows `F[i..i+N]` in reversed-key order.
pub fn extended_mask(mask: &[u64], d: usize) -> Vec<u64> {
    let n = mask.len();
    let mut f = Vec::with_capacity(n - 1 + d);
    f.extend(mask[1..].iter().map(|a| a.wrapping_neg()));
    f.extend_from_slice(&mask[..d]);
    f
}

/// Reverses a key: `s_rev[u] = s[N-1-u]`.
pub fn reverse_key(key: &[u64]) -> Vec<u64> {
    key.iter().rev().copied().collect()
}

macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq")]
                fn avx512($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512dq") {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// Wrapping dot product mod 2^64.
    fn dot(a: &[u64], b: &[u64]) -> u64 {
        a.iter().zip(b).fold(0u64, |acc, (x, y)| acc.wrapping_add(x.wrapping_mul(*y)))
    }
}

multiversion! {
    /// `acc += w * x` mod 2^64.
    fn axpy(acc: &mut [u64], w: u64, x: &[u64]) {
        for (a, v) in acc.iter_mut().zip(x) {
            *a = a.wrapping_add(w.wrapping_mul(*v));
        }
    }
}

/// Rounds 64-bit torus values to their top `bits` bits (modulus switch to 2^bits).
pub fn round_to_bits(value: u64, bits: u32) -> u64 {
    if bits >= 64 {
        return value;
    }
    let shift = 64 - bits;
    (value.wrapping_add(1u64 << (shift - 1)) >> shift) & ((1u64 << bits) - 1)
}

/// Packs values of `bits` bits each, little-endian, into bytes.
pub fn pack_bits(values: &[u64], bits: u32) -> Vec<u8> {
    let total = (values.len() * bits as usize).div_ceil(8);
    let mut out = Vec::with_capacity(total);
    let (mut buffer, mut filled) = (0u128, 0u32);
    for &v in values {
        buffer |= (v as u128) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(buffer as u8);
    }
    out
}

/// Unpacks `count` values of `bits` bits; the byte length must match exactly and unused high
/// bits must be zero, so a malformed blob is refused rather than misread.
///
/// # Errors
/// `Error::Wire` when `bits` is outside 1 to 64, the byte length is not that of `count`
/// values, or the padding bits are not zero.
pub fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Result<Vec<u64>> {
    if !(1..=64).contains(&bits) {
        return Err(Error::Wire(format!("{bits}-bit packing is not valid")));
    }
    let expected = (count * bits as usize).div_ceil(8);
    if bytes.len() != expected {
        return Err(Error::Wire(format!(
            "{} bytes of packed data, expected {expected} for {count} values of {bits} bits",
            bytes.len()
        )));
    }
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Vec::with_capacity(count);
    let (mut buffer, mut filled, mut next) = (0u128, 0u32, 0usize);
    for _ in 0..count {
        while filled < bits {
            buffer |= (bytes[next] as u128) << filled;
            next += 1;
            filled += 8;
        }
        out.push((buffer as u64) & mask);
        buffer >>= bits;
        filled -= bits;
    }
    if buffer != 0 {
        return Err(Error::Wire("non-zero padding bits in packed data".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_padding_check() {
        let values: Vec<u64> = (0..37).map(|i| (i * 7919) % (1 << 13)).collect();
        let packed = pack_bits(&values, 13);
        assert_eq!(packed.len(), (37 * 13usize).div_ceil(8));
        assert_eq!(unpack_bits(&packed, 13, 37).unwrap(), values);
        let mut bad = packed.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert!(unpack_bits(&bad, 13, 37).is_err());
        assert!(unpack_bits(&packed[1..], 13, 37).is_err());
    }

    #[test]
    fn extended_mask_matches_negacyclic_product() {
        // Coefficient i of A*S (mod X^N + 1) equals <F[i..i+N], s_rev>.
        let n = 16;
        let a = expand_mask(7, n);
        let s: Vec<u64> = (0..n as u64).map(|i| (i * 5 + 1) % 2).collect();
        let f = extended_mask(&a, 4);
        let s_rev = reverse_key(&s);
        for i in 0..4 {
            let mut expect = 0u64;
            for j in 0..n {
                let term = if j <= i {
                    a[i - j].wrapping_mul(s[j])
                } else {
                    a[n + i - j].wrapping_mul(s[j]).wrapping_neg()
                };
                expect = expect.wrapping_add(term);
            }
            assert_eq!(dot(&f[i..i + n], &s_rev), expect);
        }
    }

    #[test]
    fn rounding_to_bits() {
        assert_eq!(round_to_bits(1u64 << 63, 1), 1);
        assert_eq!(round_to_bits((1u64 << 40) - 1, 24), 1);
        assert_eq!(round_to_bits(u64::MAX, 8), 0);
        assert_eq!(round_to_bits(12345, 64), 12345);
    }
}
