//! The wire format for everything that crosses between client and server: a versioned,
//! size-limited envelope with an integrity check (tfhe's own formats accept a corrupted payload
//! byte silently, so every blob here carries a BLAKE3 digest of its payload).
//!
//! Layout: `"FHEM"` | format version (u16 LE) | kind (u8) | payload length (u32 LE) | payload
//! (bincode) | first 16 bytes of BLAKE3(header ‖ payload).

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The 4 bytes every blob starts with: `FHEM`.
pub const MAGIC: [u8; 4] = *b"FHEM";
/// Version 4: decoders carry a link (GLMs: the client applies exp), linear layers groups of
/// inputs of which one at most is non-zero (tighter score bounds for forests). Version 3: a
/// server model's program ends in its label head in label and top-K modes (no separate output
/// field). Version 2: client specs carry the column schema, quantizers their bin edges,
/// decoders an offset. Older files are refused with their version, not misread.
pub const FORMAT_VERSION: u16 = 4;
const HEADER: usize = 4 + 2 + 1 + 4;
const DIGEST: usize = 16;

/// What a blob holds. The server side opens only models and ciphertexts; a secret key is
/// refused wherever it is not the client's own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A model's public part for clients ([`crate::protocol::ClientSpec`]).
    ClientSpec = 1,
    /// A model's part for the server ([`crate::protocol::ServerModel`]).
    ServerModel = 2,
    /// One encrypted row ([`crate::protocol::EncryptedInput`]).
    EncryptedInput = 3,
    /// One encrypted result ([`crate::protocol::EncryptedOutput`]).
    EncryptedOutput = 4,
    /// A client's secret key, saved for its own later use: refused wherever else it shows up.
    SecretKey = 5,
    /// A client's evaluation key, for servers of models that bootstrap
    /// ([`crate::fhe::EvaluationKey`]).
    EvaluationKey = 6,
    /// A model as the service stores it: client spec, server model, description.
    ModelBundle = 7,
    /// Several encrypted rows for one model (the service's batch endpoint).
    InputBatch = 8,
    /// The encrypted results of an input batch, in row order.
    OutputBatch = 9,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Kind::ClientSpec,
            2 => Kind::ServerModel,
            3 => Kind::EncryptedInput,
            4 => Kind::EncryptedOutput,
            5 => Kind::SecretKey,
            6 => Kind::EvaluationKey,
            7 => Kind::ModelBundle,
            8 => Kind::InputBatch,
            9 => Kind::OutputBatch,
            _ => return None,
        })
    }

    /// Largest payload accepted for this kind, in bytes.
    pub fn limit(self) -> u32 {
        match self {
            Kind::EncryptedInput => 1 << 20,
            Kind::EncryptedOutput => 64 << 20,
            Kind::SecretKey => 1 << 20,
            // tfhe's compressed 2_2 server key is about 29 MiB.
            Kind::EvaluationKey => 64 << 20,
            Kind::ClientSpec | Kind::ServerModel | Kind::ModelBundle => 64 << 20,
            Kind::InputBatch => 64 << 20,
            // A thousand rows of ten-class scores (90 KB each) fit.
            Kind::OutputBatch => 256 << 20,
        }
    }
}

fn options(limit: u32) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limit as u64)
}

fn digest(bytes: &[u8]) -> [u8; DIGEST] {
    let full = blake3::hash(bytes);
    let mut out = [0u8; DIGEST];
    out.copy_from_slice(&full.as_bytes()[..DIGEST]);
    out
}

/// Serializes `value` into an envelope of the given kind.
///
/// # Errors
/// `Error::Wire` when `value` does not serialize within the kind's payload limit.
pub fn seal<T: Serialize>(kind: Kind, value: &T) -> Result<Vec<u8>> {
    let payload = options(kind.limit())
        .serialize(value)
        .map_err(|e| Error::Wire(format!("cannot serialize {kind:?}: {e}")))?;
    Ok(seal_payload(kind, &payload))
}

/// An envelope around any payload bytes, with a valid header and digest: lets the fuzz
/// targets reach each kind's decoder with arbitrary payloads (a mutated sealed blob would
/// fail the digest first). Not for building real blobs: use [`seal`].
#[doc(hidden)]
pub fn seal_payload(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + DIGEST);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let d = digest(&out);
    out.extend_from_slice(&d);
    out
}

/// Checks an envelope and deserializes its payload, which must be of the `expected` kind.
///
/// # Errors
/// `Error::Wire` for bytes without the header, another format version, an unknown kind, a
/// length that disagrees with the header, a failed integrity check or a malformed payload;
/// `Error::WrongKind` for a blob of another kind (a secret key named as such);
/// `Error::TooLarge` for a payload over the kind's limit.
pub fn open<T: DeserializeOwned>(expected: Kind, bytes: &[u8]) -> Result<T> {
    if bytes.len() < HEADER + DIGEST || bytes[..4] != MAGIC {
        return Err(Error::Wire(format!(
            "not an fhe-ml blob (expected {expected:?}, got {} bytes without the header)",
            bytes.len()
        )));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(Error::Wire(format!(
            "format version {version}, this build reads version {FORMAT_VERSION}"
        )));
    }
    let kind = Kind::from_byte(bytes[6])
        .ok_or_else(|| Error::Wire(format!("unknown blob kind {}", bytes[6])))?;
    if kind != expected {
        let found = if kind == Kind::SecretKey {
            "a secret key (it never leaves the client and is refused here)".to_string()
        } else {
            format!("{kind:?}")
        };
        return Err(Error::WrongKind {
            expected: format!("{expected:?}"),
            found,
        });
    }
    let len = u32::from_le_bytes([bytes[7], bytes[8], bytes[9], bytes[10]]);
    if len > expected.limit() {
        return Err(Error::TooLarge {
            what: format!("the {expected:?} payload (bytes)"),
            limit: expected.limit() as usize,
            size: len as usize,
        });
    }
    let end = HEADER + len as usize;
    if bytes.len() != end + DIGEST {
        return Err(Error::Wire(format!(
            "{expected:?} blob is {} bytes, its header says {}",
            bytes.len(),
            end + DIGEST
        )));
    }
    if digest(&bytes[..end]) != bytes[end..] {
        return Err(Error::Wire(format!(
            "{expected:?} blob failed its integrity check (corrupted)"
        )));
    }
    options(expected.limit())
        .deserialize(&bytes[HEADER..end])
        .map_err(|e| Error::Wire(format!("malformed {expected:?} payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let value = (7u32, vec![1u8, 2, 3]);
        let blob = seal(Kind::EncryptedInput, &value).unwrap();
        let back: (u32, Vec<u8>) = open(Kind::EncryptedInput, &blob).unwrap();
        assert_eq!(back, value);
        assert!(open::<(u32, Vec<u8>)>(Kind::EncryptedOutput, &blob).is_err());
        assert!(open::<(u32, Vec<u8>)>(Kind::EncryptedInput, &blob[..blob.len() - 1]).is_err());
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x10;
            assert!(
                open::<(u32, Vec<u8>)>(Kind::EncryptedInput, &bad).is_err(),
                "byte {i}"
            );
        }
        let key = seal(Kind::SecretKey, &value).unwrap();
        let err = open::<(u32, Vec<u8>)>(Kind::EncryptedInput, &key).unwrap_err();
        assert!(err.to_string().contains("secret key"));
    }
}
