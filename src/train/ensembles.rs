//! Tree ensembles that add up leaf values: gradient-boosted trees ([`GbdtParams`], classifiers
//! and regressors) and regression trees and forests ([`TreeRegressorParams`]). Each is trained
//! on the raw training rows and kept in the form an imported ONNX ensemble takes
//! ([`crate::import::TreeEnsemble`] inside an [`OnnxModel`]), so it compiles exactly as an
//! imported one ([`crate::compiler::imported`]): the client's binned quantizer cuts each feature
//! at the model's thresholds, every comparison is the float model's, and only the leaf values
//! are quantized. An encrypted comparison distinguishes at most 31 thresholds per feature (5
//! bits at tfhe's published failure rate), so both trainers split on at most 32 bins per
//! feature:
//! - gradient boosting is forust-ml's (XGBoost's algorithm: histogram splits on `bins` bins,
//!   second-order gain, L2 on the leaf weights, shrinkage by the learning rate);
//! - regression trees are [`crate::train::cart`]'s (scikit-learn's CART, squared error): a
//!   single tree on the raw values (a depth-4 tree has at most 15 thresholds), a forest's trees
//!   on the levels of one equal-frequency binning (`InputQuantizer::calibrate_bins`) shared by
//!   all of them, their thresholds mapped back to raw bin edges.

use forust_ml::gradientbooster::GradientBooster;
use forust_ml::objective::ObjectiveType;
use forust_ml::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::compiler::{Compile, Options};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::import::{Comparison, Head, ImportedTree, OnnxModel, TreeEnsemble, TreeNode};
use crate::model::CompiledModel;
use crate::quant::InputQuantizer;
use crate::train::cart::{self, CartNode};

/// Most bins per feature: 31 cut points, the most an encrypted comparison tells apart.
pub const MAX_BINS: u16 = 32;

/// A trained tree ensemble (boosted trees, a regression tree or forest) and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedEnsemble {
    /// The ensemble in imported form: its float model is [`crate::Mode::Float`]'s.
    pub model: OnnxModel,
    /// `"30-tree depth-3 gradient-boosted trees, learning rate 0.2"` and the like.
    pub description: String,
}

impl TrainedEnsemble {
    /// Class indices (into the split's classes) of raw rows (`n_rows × n_features`).
    ///
    /// # Errors
    /// `Error::Shape` / `Error::Input` for a row of the wrong width or a non-finite value.
    pub fn predict_classes(&self, rows: &[Vec<f64>]) -> Result<Vec<usize>> {
        rows.iter()
            .map(|r| Ok(self.model.class_index(r)?.unwrap_or(usize::MAX)))
            .collect()
    }

    /// Predicted values of raw rows (`n_rows × n_features`), in target units (regressions).
    ///
    /// # Errors
    /// As [`TrainedEnsemble::predict_classes`].
    pub fn predict_values(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>> {
        rows.iter().map(|r| Ok(self.model.scores(r)?[0])).collect()
    }
}

impl Compile<usize> for TrainedEnsemble {
    fn compile_with(&self, split: &Split<usize>, options: &Options) -> Result<CompiledModel> {
        self.model.compile_with(split, options)
    }
}

impl Compile<f64> for TrainedEnsemble {
    fn compile_with(&self, split: &Split<f64>, options: &Options) -> Result<CompiledModel> {
        self.model.compile_with(split, options)
    }
}

/// Gradient-boosted trees settings (XGBoost's names): `trees` rounds of depth-`depth` trees,
/// shrunk by `learning_rate`, leaf weights penalized by `l2`, splits on at most `bins` bins per
/// feature. Default: 30 rounds of depth-3 trees, learning rate 0.2, `l2` 1 (XGBoost's), 32
/// bins: the first of 20/30/50/100 rounds (learning rates 0.3/0.2/0.1/0.1) that met
/// scikit-learn's gradient boosting on every shipped dataset (tests/quality.rs), and about a
/// second per encrypted sample here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    /// Boosting rounds (1..=500): one tree per round (per class for 3+ classes).
    pub trees: usize,
    /// Depth of each tree (1..=7).
    pub depth: usize,
    /// Shrinkage of each tree's leaf weights, in (0, 1].
    pub learning_rate: f64,
    /// L2 penalty on the leaf weights (XGBoost's `lambda`, ≥ 0).
    pub l2: f64,
    /// Histogram bins per feature (2..=32).
    pub bins: u16,
    /// Seed (forust-ml draws nothing without subsampling; kept for reproducibility).
    pub seed: u64,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            trees: 30,
            depth: 3,
            learning_rate: 0.2,
            l2: 1.0,
            bins: MAX_BINS,
            seed: 42,
        }
    }
}

impl GbdtParams {
    /// Boosting rounds.
    pub fn trees(mut self, trees: usize) -> Self {
        self.trees = trees;
        self
    }

    /// Depth of each tree.
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// Shrinkage of each tree.
    pub fn learning_rate(mut self, rate: f64) -> Self {
        self.learning_rate = rate;
        self
    }

    /// The seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// `Error::Training` naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Training(m));
        if !(1..=500).contains(&self.trees) {
            return bad(format!(
                "boosting rounds must be 1 to 500, got {}",
                self.trees
            ));
        }
        if !(1..=7).contains(&self.depth) {
            return bad(format!("tree depth must be 1 to 7, got {}", self.depth));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad(format!(
                "the learning rate must be in (0, 1], got {}",
                self.learning_rate
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!("l2 must be finite and ≥ 0, got {}", self.l2));
        }
        if !(2..=MAX_BINS).contains(&self.bins) {
            return bad(format!("bins must be 2 to {MAX_BINS}, got {}", self.bins));
        }
        Ok(())
    }

    fn booster(&self, objective: ObjectiveType) -> GradientBooster {
        let mut b = GradientBooster::default()
            .set_objective_type(objective)
            .set_iterations(self.trees)
            .set_learning_rate(self.learning_rate as f32)
            .set_max_depth(self.depth)
            .set_l2(self.l2 as f32)
            .set_nbins(self.bins)
            .set_seed(self.seed)
            .set_parallel(false)
            .set_allow_missing_splits(false)
            .set_initialize_base_score(true);
        b.min_leaf_weight = 1.0;
        b
    }

    /// Fits one booster on `y` and returns its trees (leaf weights already shrunk) and base
    /// score; `output` tags the leaf weights.
    fn boost(
        &self,
        split_raw: &ndarray::Array2<f64>,
        y: &[f64],
        objective: ObjectiveType,
        output: usize,
    ) -> Result<(Vec<ImportedTree>, f64)> {
        let (n, d) = split_raw.dim();
        // forust-ml reads column-major data.
        let data: Vec<f64> = split_raw.t().iter().copied().collect();
        let matrix = Matrix::new(&data, n, d);
        let mut booster = self.booster(objective);
        booster
            .fit(&matrix, y, &vec![1.0; n], None)
            .map_err(|e| Error::Training(format!("gradient boosting: {e}")))?;
        let trees = booster
            .trees
            .iter()
            .map(|tree| forust_tree(tree, output))
            .collect::<Result<_>>()?;
        Ok((trees, booster.base_score))
    }

    /// Fits a classifier on the split's raw training rows: one booster on the log loss for two
    /// classes (a sigmoid of the summed leaves), one per class against the rest for more (the
    /// largest sum wins).
    ///
    /// # Errors
    /// `Error::Training` for invalid settings, no rows or features, or a failed fit.
    pub fn fit(&self, split: &Split<usize>) -> Result<TrainedEnsemble> {
        self.validate()?;
        let raw = &split.train_raw;
        if raw.nrows() == 0 || raw.ncols() == 0 {
            return Err(Error::Training("no training rows or features".into()));
        }
        let n_classes = split.classes.len();
        let targets = split.train.targets();
        let positives: Vec<usize> = if n_classes == 2 {
            vec![1]
        } else {
            (0..n_classes).collect()
        };
        let mut trees = Vec::new();
        let mut base = Vec::new();
        for (output, &class) in positives.iter().enumerate() {
            let y: Vec<f64> = targets
                .iter()
                .map(|&t| f64::from(u8::from(t == class)))
                .collect();
            let (t, b) = self.boost(raw, &y, ObjectiveType::LogLoss, output)?;
            trees.extend(t);
            base.push(b);
        }
        let head = if n_classes == 2 {
            Head::Logistic
        } else {
            Head::Argmax
        };
        let ensemble = TreeEnsemble {
            trees,
            n_outputs: positives.len(),
            base,
            average: false,
        };
        Ok(TrainedEnsemble {
            model: OnnxModel::from_trees(
                FORUST.into(),
                raw.ncols(),
                Some(split.classes.clone()),
                ensemble,
                head,
            ),
            description: self.describe(n_classes),
        })
    }

    /// Fits a regressor (squared error) on the split's raw training rows.
    ///
    /// # Errors
    /// As [`GbdtParams::fit`].
    pub fn fit_regression(&self, split: &Split<f64>) -> Result<TrainedEnsemble> {
        self.validate()?;
        let raw = &split.train_raw;
        if raw.nrows() == 0 || raw.ncols() == 0 {
            return Err(Error::Training("no training rows or features".into()));
        }
        let y = split.train.targets().to_vec();
        let (trees, base) = self.boost(raw, &y, ObjectiveType::SquaredLoss, 0)?;
        let ensemble = TreeEnsemble {
            trees,
            n_outputs: 1,
            base: vec![base],
            average: false,
        };
        Ok(TrainedEnsemble {
            model: OnnxModel::from_trees(
                FORUST.into(),
                raw.ncols(),
                None,
                ensemble,
                Head::Regression,
            ),
            description: self.describe(0),
        })
    }

    fn describe(&self, n_classes: usize) -> String {
        let per = if n_classes > 2 {
            format!(" × {n_classes} classes (one-vs-rest)")
        } else {
            String::new()
        };
        format!(
            "{}-round{per} depth-{} gradient-boosted trees, learning rate {}",
            self.trees, self.depth, self.learning_rate
        )
    }
}

/// The producer named in a boosted model's description.
const FORUST: &str = "forust-ml 0.8.0";

/// One forust-ml tree as an imported tree: `x < split_value` goes left (forust's rule; no
/// missing values reach a model, the loader refuses them).
fn forust_tree(tree: &forust_ml::tree::Tree, output: usize) -> Result<ImportedTree> {
    // forust numbers nodes by `num`; the imported form indexes them by position.
    let position: std::collections::HashMap<usize, usize> = tree
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.num, i))
        .collect();
    let at = |num: usize| {
        position
            .get(&num)
            .copied()
            .ok_or_else(|| Error::Training(format!("gradient boosting: no node {num}")))
    };
    let mut nodes = Vec::with_capacity(tree.nodes.len());
    for n in &tree.nodes {
        nodes.push(if n.is_leaf {
            TreeNode::Leaf {
                weights: vec![(output, f64::from(n.weight_value))],
            }
        } else {
            TreeNode::Branch {
                feature: n.split_feature,
                threshold: n.split_value as f32,
                mode: Comparison::Lt,
                yes: at(n.left_child)?,
                no: at(n.right_child)?,
            }
        });
    }
    // The root must come first.
    if tree.nodes.first().map(|n| n.num) != Some(0) {
        return Err(Error::Training(
            "gradient boosting: a tree whose root is not first".into(),
        ));
    }
    Ok(ImportedTree { nodes })
}

/// Regression tree and forest settings: `trees` CART trees of depth `depth`; a single tree
/// splits the raw values, a forest's trees `bits`-bit equal-frequency bins, each tree a
/// bootstrap sample of the rows (every feature, as scikit-learn's `RandomForestRegressor`), the
/// forest predicting their mean. Default ([`TreeRegressorParams::tree`]): one depth-4 tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TreeRegressorParams {
    /// Number of trees (1..=200; 1 is a single tree on every row).
    pub trees: usize,
    /// Depth of each tree (1..=7).
    pub depth: usize,
    /// Bits of the bins the trees split on (2..=5).
    pub bits: u32,
    /// Seed of a forest's bootstrap samples (ChaCha8).
    pub seed: u64,
}

impl TreeRegressorParams {
    /// One depth-4 regression tree.
    pub fn tree() -> Self {
        Self {
            trees: 1,
            depth: 4,
            bits: 5,
            seed: 42,
        }
    }

    /// A forest of 10 depth-4 regression trees.
    pub fn forest() -> Self {
        Self {
            trees: 10,
            ..Self::tree()
        }
    }

    /// Number of trees.
    pub fn trees(mut self, trees: usize) -> Self {
        self.trees = trees;
        self
    }

    /// Depth of each tree.
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// Seed of the bootstrap samples.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits on the split's raw training rows.
    ///
    /// # Errors
    /// `Error::Training` for settings out of range, or no rows or features.
    pub fn fit(&self, split: &Split<f64>) -> Result<TrainedEnsemble> {
        if !(1..=200).contains(&self.trees)
            || !(1..=7).contains(&self.depth)
            || !(2..=5).contains(&self.bits)
        {
            return Err(Error::Training(format!(
                "regression trees need 1 to 200 trees, depth 1 to 7 and 2 to 5 bits, got {} trees, depth {}, {} bits",
                self.trees, self.depth, self.bits
            )));
        }
        let raw = &split.train_raw;
        let (n, d) = raw.dim();
        if n == 0 || d == 0 {
            return Err(Error::Training("no training rows or features".into()));
        }
        let y = split.train.targets().to_vec();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let params = cart::CartParams {
            max_depth: self.depth,
            max_features: None,
            reuse: 0.0,
        };
        let mut trees = Vec::with_capacity(self.trees);
        if self.trees == 1 {
            let rows: Vec<usize> = (0..n).collect();
            let grown = cart::grow(raw, &rows, cart::Target::Values(&y), params, &mut rng);
            trees.push(imported_tree(&grown, |_, t| Ok(t))?);
        } else {
            let quantizer = InputQuantizer::calibrate_bins(raw, self.bits);
            let levels = ndarray::Array2::from_shape_fn((n, d), |(i, j)| {
                quantizer.quantize(&raw.row(i).to_vec()).values[j] as f64
            });
            // `level < t` (between levels ⌈t⌉ - 1 and ⌈t⌉) is `x < edges[⌈t⌉ - 1]`: a value's
            // level counts the edges at or below it.
            let edge = |feature: usize, t: f64| {
                quantizer
                    .edges
                    .get(feature)
                    .and_then(|e| e.get((t.ceil() as usize).wrapping_sub(1)))
                    .copied()
                    .ok_or_else(|| {
                        Error::Training(format!(
                            "a split of feature {feature} at level {t} has no bin edge"
                        ))
                    })
            };
            for _ in 0..self.trees {
                let rows: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
                let grown = cart::grow(&levels, &rows, cart::Target::Values(&y), params, &mut rng);
                trees.push(imported_tree(&grown, edge)?);
            }
        }
        let ensemble = TreeEnsemble {
            trees,
            n_outputs: 1,
            base: vec![0.0],
            average: true,
        };
        let description = if self.trees == 1 {
            format!("depth-{} regression tree", self.depth)
        } else {
            format!("{}-tree depth-{} regression forest", self.trees, self.depth)
        };
        Ok(TrainedEnsemble {
            model: OnnxModel::from_trees("fhe-ml CART".into(), d, None, ensemble, Head::Regression),
            description,
        })
    }
}

/// A grown tree as an imported one on raw values: `x < threshold(feature, t)` goes left, for
/// the tree's own threshold `t`.
fn imported_tree(
    nodes: &[CartNode],
    threshold: impl Fn(usize, f64) -> Result<f64>,
) -> Result<ImportedTree> {
    let nodes = nodes
        .iter()
        .map(|node| match node {
            CartNode::Leaf { value } => Ok(TreeNode::Leaf {
                weights: vec![(0, value[0])],
            }),
            CartNode::Split {
                feature,
                threshold: t,
                left,
                right,
            } => Ok(TreeNode::Branch {
                feature: *feature,
                threshold: threshold(*feature, *t)? as f32,
                mode: Comparison::Lt,
                yes: *left,
                no: *right,
            }),
        })
        .collect::<Result<_>>()?;
    Ok(ImportedTree { nodes })
}
