//! Cryptography on `tfhe`'s core_crypto layer: the parameter set, the leveled encoding plan
//! with its noise bounds, the LWE/GLWE kernels, and the wire format.

pub mod kernels;
pub mod params;
pub mod plan;
pub mod wire;

pub use params::LeveledParameters;
pub use plan::LeveledPlan;
