//! The server role: holds a model's integer program, and for models that bootstrap the
//! client's evaluation key, and answers encrypted queries. It holds no secret key material, and
//! no constructor or method takes one; wire readers refuse one. The computation itself is the
//! encrypted interpreter's ([`crate::program::encrypted`]).

use rayon::prelude::*;

use std::sync::Arc;

use crate::error::Result;
use crate::fhe::bootstrap::Bootstrapper;
use crate::fhe::{EvaluationKey, LabelHead};
use crate::program::encrypted::{EncryptedProgram, StepTiming, Trace};
use crate::protocol::{EncryptedInput, EncryptedOutput, ServerModel};

/// The evaluating side of encrypted inference.
#[derive(Debug)]
pub struct Server {
    program: EncryptedProgram,
}

impl Server {
    /// Whether a model needs its client's evaluation key: it bootstraps, or returns labels.
    pub fn needs_evaluation_key(model: &ServerModel) -> bool {
        model.program.needs_evaluation_key()
    }

    /// A server for a leveled model (one linear step) returning scores, which needs no
    /// evaluation key.
    ///
    /// # Errors
    /// `Error::Compile` when the model bootstraps or returns labels (use
    /// [`Server::with_evaluation_key`]), its program is invalid, or its plan is not the one
    /// this build derives from it; `Error::Wire` for an unknown parameter set.
    pub fn new(model: ServerModel) -> Result<Self> {
        Ok(Self {
            program: EncryptedProgram::new(model, None)?,
        })
    }

    /// A server for any model, with the evaluation key a client generated
    /// (`Client::evaluation_key`); leveled models returning scores ignore the key.
    ///
    /// # Errors
    /// `Error::Wire` for a key of another parameter set or with the wrong dimensions; then
    /// as [`Server::with_expanded_key`].
    pub fn with_evaluation_key(model: ServerModel, key: &EvaluationKey) -> Result<Self> {
        if !Self::needs_evaluation_key(&model) {
            return Self::new(model);
        }
        let expanded = key.expand(&model.plan.params)?;
        Self::with_expanded_key(model, Arc::new(expanded))
    }

    /// A server for a model that bootstraps, with a client's evaluation key already expanded
    /// (one expanded key can serve every model of a client); leveled models returning scores
    /// ignore the key.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for a key of another parameter set; `Error::Compile` when the
    /// program is invalid, its plan or label head is not the one this build derives from it,
    /// or its lookups do not fit the parameter set; `Error::Wire` for an unknown parameter set
    /// or one without bootstrap parameters.
    pub fn with_expanded_key(model: ServerModel, bootstrapper: Arc<Bootstrapper>) -> Result<Self> {
        Ok(Self {
            program: EncryptedProgram::new(model, Some(bootstrapper))?,
        })
    }

    /// The model this server evaluates.
    pub fn model(&self) -> &ServerModel {
        self.program.model()
    }

    /// Bootstraps one inference costs ([`crate::program::Program::bootstraps`]: lookups and
    /// label head).
    pub fn bootstraps_per_inference(&self) -> usize {
        self.model().program.bootstraps()
    }

    /// The label head, in label and top-K modes.
    pub fn label_head(&self) -> Option<&LabelHead> {
        self.model().program.head()
    }

    /// Runs the model on one encrypted row.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for an input made for another model, or by a client whose
    /// evaluation key this server does not hold; `Error::Wire` when the input's feature
    /// count, bits or packing are not the model's.
    pub fn infer(&self, input: &EncryptedInput) -> Result<EncryptedOutput> {
        Ok(self.program.run(input, false)?.0)
    }

    /// `infer`, also returning the ciphertexts before every step but the first, with each
    /// step's delta ([`EncryptedProgram::run_traced`]). Only the client can read them.
    ///
    /// # Errors
    /// As [`Server::infer`].
    #[doc(hidden)]
    pub fn infer_traced(&self, input: &EncryptedInput) -> Result<(EncryptedOutput, Trace)> {
        self.program.run_traced(input)
    }

    /// `infer`, timing each program step.
    ///
    /// # Errors
    /// As [`Server::infer`].
    pub fn infer_profiled(
        &self,
        input: &EncryptedInput,
    ) -> Result<(EncryptedOutput, Vec<StepTiming>)> {
        self.program.run(input, true)
    }

    /// The output ciphertexts at full 64-bit precision, before the modulus switch that sizes
    /// them for the wire (reversed-key order, as clients decrypt): what an attacker holding the
    /// key sees at best. For the model-privacy tests.
    ///
    /// # Errors
    /// As [`Server::infer`].
    #[doc(hidden)]
    pub fn infer_unrounded(&self, input: &EncryptedInput) -> Result<Vec<Vec<u64>>> {
        Ok(self.program.run_unrounded(input, false, None)?.0)
    }

    /// Runs the model on many rows, in parallel on all cores; one result per row.
    ///
    /// # Errors
    /// Each row's result fails as [`Server::infer`] does; one bad row does not stop the others.
    pub fn infer_batch(&self, inputs: &[EncryptedInput]) -> Vec<Result<EncryptedOutput>> {
        inputs.par_iter().map(|ct| self.infer(ct)).collect()
    }

    /// Wire form of `infer`: an input blob in, an output blob out.
    ///
    /// # Errors
    /// As [`EncryptedInput::from_bytes`] for the blob, then as [`Server::infer`];
    /// `Error::Wire` if the output does not serialize within its 64 MiB limit.
    pub fn infer_bytes(&self, input: &[u8]) -> Result<Vec<u8>> {
        self.infer(&EncryptedInput::from_bytes(input)?)?.to_bytes()
    }
}
