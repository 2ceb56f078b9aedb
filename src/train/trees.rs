//! Decision trees and random forests, trained on plaintext with [`crate::train::cart`]
//! (scikit-learn's CART with Gini impurity; see there why not linfa-trees).
//!
//! A forest is bagging, deterministic for a seed: each tree sees a bootstrap sample of the
//! rows (seeded ChaCha) and a random half of the features, and the forest predicts by majority
//! vote, ties going to the lowest class index (a leaf's class too).
//!
//! Two forests are fitted from the same draws: the plaintext one on raw features, and the one
//! encryption runs, on features binned to a few bits by the client's quantizer (equal-frequency
//! bins of the training values, `InputQuantizer::calibrate_bins`: robust to outliers, and
//! exact for features with few distinct values). Its thresholds fall between levels, so the
//! integer comparisons the encrypted program makes are exactly the tree's.

use ndarray::{Array1, Array2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::quant::InputQuantizer;
use crate::train::cart::{self, CartNode};

/// Shape and training of a tree or a forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestConfig {
    /// Maximum depth (root at depth 0).
    pub depth: usize,
    /// Number of trees: 1 is a single decision tree on every row and feature.
    pub trees: usize,
    /// Bits per feature the client quantizes to (2..=5: a comparison then stays at tfhe's
    /// published failure probability or far below it).
    pub input_bits: u32,
    /// Fraction of the features each tree of a forest sees.
    pub feature_fraction: f64,
    /// Seed of the forest's bootstrap rows and feature draws (ChaCha8).
    pub seed: u64,
    /// The quantized (encrypted) trees prefer a feature some tree already splits on when its
    /// split removes at least `1 - reuse` of the impurity the best split removes: each distinct
    /// feature is one comparison bootstrap per inference ([`crate::train::cart::CartParams`]).
    /// 0: plain CART. Models saved before issue 19 read as 0.
    #[serde(default)]
    pub reuse: f64,
}

impl Default for ForestConfig {
    fn default() -> Self {
        Self {
            depth: 4,
            trees: 1,
            input_bits: 4,
            feature_fraction: 0.5,
            seed: 42,
            reuse: 0.2,
        }
    }
}

impl ForestConfig {
    /// A 10-tree forest of depth 4.
    pub fn forest() -> Self {
        Self {
            trees: 10,
            ..Self::default()
        }
    }

    /// Checks the settings: depth 1 to 7, 1 to 200 trees, 2 to 5 input bits, and a feature
    /// fraction in `(0, 1]`.
    ///
    /// # Errors
    /// `Error::Training` naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Training(m.to_string()));
        if !(1..=7).contains(&self.depth) {
            return bad("tree depth must be between 1 and 7");
        }
        if !(1..=200).contains(&self.trees) {
            return bad("the number of trees must be between 1 and 200");
        }
        if !(2..=5).contains(&self.input_bits) {
            return bad("tree input bits must be between 2 and 5");
        }
        if !(self.feature_fraction > 0.0 && self.feature_fraction <= 1.0) {
            return bad("the feature fraction must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.reuse) {
            return bad("feature reuse must be in [0, 1)");
        }
        Ok(())
    }
}

/// A node of a fitted tree: a split sends a row right when `x[feature] >= threshold`
/// (linfa's rule), a leaf holds a class index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// An internal node: rows with `x[feature] < threshold` go to `left`, the others to
    /// `right`.
    Split {
        /// Index of the compared feature in the full row (not the tree's feature subset).
        feature: usize,
        /// The threshold, in the units of the features the tree was fitted on (raw values,
        /// or quantized levels).
        threshold: f64,
        /// Index of the left child in [`Tree::nodes`].
        left: usize,
        /// Index of the right child in [`Tree::nodes`].
        right: usize,
    },
    /// A leaf.
    Leaf {
        /// The class index it predicts.
        class: usize,
    },
}

/// One tree, nodes indexed from the root (0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes in depth-first order (each split before its left, then its right subtree).
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The class of a row (of the features the tree was fitted on).
    pub fn predict(&self, row: &[f64]) -> usize {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf { class } => return class,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if row[feature] < threshold {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }

    /// The same tree with every split whose two sides predict one class replaced by a leaf of
    /// that class (bottom up): the same predictions, fewer splits. CART grows such splits when
    /// they purify a side without changing its majority; encrypted, each leaf parent costs a
    /// lookup.
    pub fn merged(&self) -> Tree {
        fn build(old: &[Node], i: usize, out: &mut Vec<Node>) -> usize {
            let index = out.len();
            match old[i] {
                Node::Leaf { class } => out.push(Node::Leaf { class }),
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    out.push(Node::Leaf { class: 0 });
                    let l = build(old, left, out);
                    let r = build(old, right, out);
                    match (&out[l], &out[r]) {
                        (Node::Leaf { class: a }, Node::Leaf { class: b }) if a == b => {
                            let class = *a;
                            out.truncate(index);
                            out.push(Node::Leaf { class });
                        }
                        _ => {
                            out[index] = Node::Split {
                                feature,
                                threshold,
                                left: l,
                                right: r,
                            }
                        }
                    }
                }
            }
            index
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        build(&self.nodes, 0, &mut nodes);
        Tree { nodes }
    }

    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        fn at(nodes: &[Node], i: usize) -> usize {
            match nodes[i] {
                Node::Leaf { .. } => 0,
                Node::Split { left, right, .. } => 1 + at(nodes, left).max(at(nodes, right)),
            }
        }
        at(&self.nodes, 0)
    }
}

/// Trees voting: the most votes wins, ties go to the lowest class index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The trees (one for a single decision tree).
    pub trees: Vec<Tree>,
    /// Classes voted for.
    pub n_classes: usize,
}

impl Forest {
    /// Votes per class for one row (`n_classes` counts).
    pub fn votes(&self, row: &[f64]) -> Vec<usize> {
        let mut votes = vec![0; self.n_classes];
        for t in &self.trees {
            votes[t.predict(row)] += 1;
        }
        votes
    }

    /// The class with the most votes for one row, ties to the lowest index.
    pub fn predict(&self, row: &[f64]) -> usize {
        let votes = self.votes(row);
        (0..votes.len()).fold(0, |best, c| if votes[c] > votes[best] { c } else { best })
    }

    /// Split nodes over all trees.
    pub fn splits(&self) -> usize {
        self.trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|n| matches!(n, Node::Split { .. }))
            .count()
    }
}

/// The two forests of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedForest {
    /// The settings it was trained with.
    pub config: ForestConfig,
    /// The client's quantizer (calibrated on the raw training rows).
    pub quantizer: InputQuantizer,
    /// Fitted on raw features: the plaintext model.
    pub plain: Forest,
    /// Fitted on quantized features (integer levels): the model encryption runs.
    pub quantized: Forest,
}

impl TrainedForest {
    /// The quantized levels of a raw row, as the quantized forest reads them.
    pub fn quantize(&self, row: &[f64]) -> Vec<f64> {
        self.quantizer
            .quantize(row)
            .values
            .iter()
            .map(|&v| v as f64)
            .collect()
    }

    /// Plaintext predictions for raw rows.
    pub fn predict_plain(&self, rows: &[Vec<f64>]) -> Vec<usize> {
        rows.iter().map(|r| self.plain.predict(r)).collect()
    }

    /// Predictions of the quantized forest (the clear twin of the encrypted one).
    pub fn predict_quantized(&self, rows: &[Vec<f64>]) -> Vec<usize> {
        rows.iter()
            .map(|r| self.quantized.predict(&self.quantize(r)))
            .collect()
    }
}

fn fit_tree(
    records: Array2<f64>,
    targets: Array1<usize>,
    n_classes: usize,
    depth: usize,
    features: &[usize],
    reuse: Option<(f64, &mut [bool])>,
) -> Result<Tree> {
    let y = targets.to_vec();
    let rows: Vec<usize> = (0..y.len()).collect();
    // Every candidate feature at every node: the randomness of a forest is in its draws.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // `used` of the forest (all features) seen through this tree's columns.
    let (tolerance, mut used) = match &reuse {
        Some((r, used)) => (*r, features.iter().map(|&f| used[f]).collect()),
        None => (0.0, vec![false; features.len()]),
    };
    let grown = cart::grow_reusing(
        &records,
        &rows,
        cart::Target::Classes { y: &y, n_classes },
        cart::CartParams {
            max_depth: depth,
            max_features: None,
            reuse: tolerance,
        },
        &mut rng,
        &mut used,
    );
    if let Some((_, forest_used)) = reuse {
        for (&f, &u) in features.iter().zip(&used) {
            forest_used[f] |= u;
        }
    }
    let nodes = grown
        .into_iter()
        .map(|node| match node {
            CartNode::Split {
                feature,
                threshold,
                left,
                right,
            } => Node::Split {
                feature: features[feature],
                threshold,
                left,
                right,
            },
            // The majority class; ties to the lowest index.
            CartNode::Leaf { value } => Node::Leaf {
                class: (0..value.len()).fold(0, |b, k| if value[k] > value[b] { k } else { b }),
            },
        })
        .collect();
    Ok(Tree { nodes }.merged())
}

/// Fits the plaintext and the quantized forests on the split's training rows.
///
/// # Errors
/// `Error::Training` for invalid settings, no training rows or features, or a failed
/// linfa-trees fit.
pub fn fit_forest(split: &Split<usize>, config: &ForestConfig) -> Result<TrainedForest> {
    config.validate()?;
    let n_classes = split.classes.len();
    let raw = &split.train_raw;
    let (n, d) = raw.dim();
    if n == 0 || d == 0 {
        return Err(Error::Training("no training rows or features".into()));
    }
    let quantizer = InputQuantizer::calibrate_bins(raw, config.input_bits);
    let quantized = Array2::from_shape_fn((n, d), |(i, j)| {
        quantizer.quantize(&raw.row(i).to_vec()).values[j] as f64
    });
    let targets = split.train.targets();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let per_tree = ((d as f64 * config.feature_fraction).ceil() as usize).clamp(1, d);
    let (mut plain, mut quant) = (Vec::new(), Vec::new());
    // Features the quantized trees split on so far (each is one comparison bootstrap).
    let mut used = vec![false; d];
    for _ in 0..config.trees {
        // A single tree sees everything; a forest's trees see bootstrap rows and some columns.
        let (rows, mut features): (Vec<usize>, Vec<usize>) = if config.trees == 1 {
            ((0..n).collect(), (0..d).collect())
        } else {
            let rows = (0..n).map(|_| rng.gen_range(0..n)).collect();
            let mut all: Vec<usize> = (0..d).collect();
            all.shuffle(&mut rng);
            (rows, all[..per_tree].to_vec())
        };
        features.sort_unstable();
        let y = targets.select(Axis(0), &rows);
        let take = |m: &Array2<f64>| m.select(Axis(0), &rows).select(Axis(1), &features);
        plain.push(fit_tree(
            take(raw),
            y.clone(),
            n_classes,
            config.depth,
            &features,
            None,
        )?);
        quant.push(fit_tree(
            take(&quantized),
            y,
            n_classes,
            config.depth,
            &features,
            Some((config.reuse, &mut used)),
        )?);
    }
    Ok(TrainedForest {
        config: config.clone(),
        quantizer,
        plain: Forest {
            trees: plain,
            n_classes,
        },
        quantized: Forest {
            trees: quant,
            n_classes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split whose sides both predict class 1 (after merging below it) becomes a leaf; the
    /// merged tree predicts the same class for every level of its two features.
    #[test]
    fn splits_with_one_class_on_both_sides_merge() {
        let split = |feature, threshold, left, right| Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        let leaf = |class| Node::Leaf { class };
        // root: x0 < 2 ? (x1 < 1 ? 1 : (x1 < 3 ? 1 : 1)) : (x1 < 4 ? 0 : 1)
        let tree = Tree {
            nodes: vec![
                split(0, 2.0, 1, 6),
                split(1, 1.0, 2, 3),
                leaf(1),
                split(1, 3.0, 4, 5),
                leaf(1),
                leaf(1),
                split(1, 4.0, 7, 8),
                leaf(0),
                leaf(1),
            ],
        };
        let merged = tree.merged();
        assert_eq!(
            merged.nodes,
            vec![
                split(0, 2.0, 1, 2),
                leaf(1),
                split(1, 4.0, 3, 4),
                leaf(0),
                leaf(1)
            ]
        );
        for a in 0..6 {
            for b in 0..6 {
                let row = [a as f64, b as f64];
                assert_eq!(merged.predict(&row), tree.predict(&row), "{row:?}");
            }
        }
    }
}
