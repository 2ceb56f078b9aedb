//! Tree ensembles as ONNX-ML writes them (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`:
//! scikit-learn's trees and forests through skl2onnx, XGBoost through onnxmltools), with their
//! float32 comparison semantics, and the cut points that make a binned client quantizer
//! reproduce those comparisons exactly.

use super::tensor::Attributes;
use crate::error::{Error, Result};

/// A branch's test, as `nodes_modes` names it: the row goes to `yes` when `x <op> threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `BRANCH_LEQ`: `x <= t` (scikit-learn).
    Leq,
    /// `BRANCH_LT`: `x < t` (XGBoost).
    Lt,
    /// `BRANCH_GTE`: `x >= t`.
    Gte,
    /// `BRANCH_GT`: `x > t`.
    Gt,
}

/// A node of one tree; children are indices into [`ImportedTree::nodes`].
#[derive(Debug, Clone, PartialEq)]
pub enum TreeNode {
    /// A test of one feature against a float32 threshold.
    Branch {
        /// The feature's index in the row.
        feature: usize,
        /// The threshold, in float32 as the file stores it.
        threshold: f32,
        /// The test.
        mode: Comparison,
        /// Child taken when the test holds.
        yes: usize,
        /// Child taken otherwise.
        no: usize,
    },
    /// A leaf: `(output, weight)` pairs added to the ensemble's scores.
    Leaf {
        /// Contributions to the outputs.
        weights: Vec<(usize, f64)>,
    },
}

/// One tree, its root at index 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTree {
    /// Nodes, root first.
    pub nodes: Vec<TreeNode>,
}

/// A tree ensemble: `score[k] = base[k] + Σ_trees leaf weight for k` (divided by the number of
/// trees first when `average`).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    /// The trees.
    pub trees: Vec<ImportedTree>,
    /// Scores out (`n_outputs`): classes, 1 for a binary classifier with one score, targets.
    pub n_outputs: usize,
    /// Added to the scores (`n_outputs`; zeros when the file gives none).
    pub base: Vec<f64>,
    /// `aggregate_function = AVERAGE` (regressors): the leaf sum is divided by the tree count.
    pub average: bool,
}

impl Comparison {
    fn parse(mode: &str) -> Option<Self> {
        Some(match mode {
            "BRANCH_LEQ" => Comparison::Leq,
            "BRANCH_LT" => Comparison::Lt,
            "BRANCH_GTE" => Comparison::Gte,
            "BRANCH_GT" => Comparison::Gt,
            _ => return None,
        })
    }

    /// The test on a float32 value, as ONNX runtimes evaluate it.
    pub fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Comparison::Leq => x <= t,
            Comparison::Lt => x < t,
            Comparison::Gte => x >= t,
            Comparison::Gt => x > t,
        }
    }

    /// The cut point `c` (in f64) and the side of it where the test holds, for a row value `x`
    /// rounded to float32 first: the test holds iff `x < c` (`true`) or iff `x >= c`
    /// (`false`). `c` is halfway between `t` and its float32 neighbour, so rounding `x` to
    /// float32 never crosses it except on an exact tie (a 25-bit value).
    pub fn cut(self, t: f32) -> (f64, bool) {
        let up = f64::from(t) + (f64::from(t.next_up()) - f64::from(t)) / 2.0;
        let down = f64::from(t) - (f64::from(t) - f64::from(t.next_down())) / 2.0;
        match self {
            Comparison::Leq => (up, true),
            Comparison::Lt => (down, true),
            Comparison::Gt => (up, false),
            Comparison::Gte => (down, false),
        }
    }
}

impl ImportedTree {
    /// The leaf a row reaches.
    pub fn leaf(&self, row: &[f64]) -> &[(usize, f64)] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                TreeNode::Leaf { weights } => return weights,
                TreeNode::Branch {
                    feature,
                    threshold,
                    mode,
                    yes,
                    no,
                } => {
                    i = if mode.holds(row[*feature] as f32, *threshold) {
                        *yes
                    } else {
                        *no
                    }
                }
            }
        }
    }

    /// Edges from the root to the deepest leaf.
    pub fn depth(&self) -> usize {
        fn walk(nodes: &[TreeNode], i: usize) -> usize {
            match &nodes[i] {
                TreeNode::Leaf { .. } => 0,
                TreeNode::Branch { yes, no, .. } => 1 + walk(nodes, *yes).max(walk(nodes, *no)),
            }
        }
        walk(&self.nodes, 0)
    }
}

impl TreeEnsemble {
    /// The scores of a row (`n_features` values, checked by the caller): `n_outputs` values.
    pub fn scores(&self, row: &[f64]) -> Vec<f64> {
        let mut s = vec![0.0; self.n_outputs];
        for tree in &self.trees {
            for &(k, w) in tree.leaf(row) {
                s[k] += w;
            }
        }
        let n = if self.average {
            self.trees.len().max(1) as f64
        } else {
            1.0
        };
        s.iter().zip(&self.base).map(|(v, b)| v / n + b).collect()
    }

    /// The deepest tree's depth.
    pub fn max_depth(&self) -> usize {
        self.trees
            .iter()
            .map(ImportedTree::depth)
            .max()
            .unwrap_or(0)
    }

    /// Every leaf weight is `>= 0`.
    pub fn weights_non_negative(&self) -> bool {
        self.trees.iter().all(|t| {
            t.nodes.iter().all(|n| match n {
                TreeNode::Leaf { weights } => weights.iter().all(|&(_, w)| w >= 0.0),
                TreeNode::Branch { .. } => true,
            })
        })
    }

    /// Reads a `TreeEnsembleClassifier` (`prefix = "class"`) or `TreeEnsembleRegressor`
    /// (`"target"`) node whose weights name `n_ids` classes or targets. `binary` is ONNX-ML's
    /// binary case (two classes, every weight on one id): one score, the second class's.
    pub(crate) fn parse(
        a: &Attributes<'_>,
        prefix: &str,
        n_ids: usize,
        binary: bool,
        n_features: usize,
        refuse: &dyn Fn(String) -> Error,
    ) -> Result<Self> {
        let n_outputs = if binary { 1 } else { n_ids };
        for tensor_form in [
            "nodes_values_as_tensor",
            "nodes_hitrates_as_tensor",
            "base_values_as_tensor",
            &format!("{prefix}_weights_as_tensor"),
        ] {
            if a.has(tensor_form) {
                return Err(refuse(format!(
                    "attribute {tensor_form} (double-precision trees) is not supported; export with float thresholds"
                )));
            }
        }
        let tree_ids = a.ints("nodes_treeids");
        let node_ids = a.ints("nodes_nodeids");
        let features = a.ints("nodes_featureids");
        let values = a.floats("nodes_values");
        let modes = a.strings("nodes_modes");
        let yes = a.ints("nodes_truenodeids");
        let no = a.ints("nodes_falsenodeids");
        let n = tree_ids.len();
        if [
            node_ids.len(),
            features.len(),
            values.len(),
            modes.len(),
            yes.len(),
            no.len(),
        ]
        .iter()
        .any(|&l| l != n)
            || n == 0
        {
            return Err(refuse(
                "the nodes_* attributes have different lengths".into(),
            ));
        }
        // Trees and their nodes, by id.
        let mut trees: std::collections::BTreeMap<i64, std::collections::BTreeMap<i64, usize>> =
            Default::default();
        for i in 0..n {
            if trees
                .entry(tree_ids[i])
                .or_default()
                .insert(node_ids[i], i)
                .is_some()
            {
                return Err(refuse(format!(
                    "node {} of tree {} is given twice",
                    node_ids[i], tree_ids[i]
                )));
            }
        }
        let w_tree = a.ints(&format!("{prefix}_treeids"));
        let w_node = a.ints(&format!("{prefix}_nodeids"));
        let w_id = a.ints(&format!("{prefix}_ids"));
        let w_value = a.floats(&format!("{prefix}_weights"));
        if [w_node.len(), w_id.len(), w_value.len()]
            .iter()
            .any(|&l| l != w_tree.len())
        {
            return Err(refuse(format!(
                "the {prefix}_* attributes have different lengths"
            )));
        }
        let mut leaf_weights: std::collections::HashMap<(i64, i64), Vec<(usize, f64)>> =
            Default::default();
        for j in 0..w_tree.len() {
            let id = usize::try_from(w_id[j])
                .ok()
                .filter(|&k| k < n_ids)
                .ok_or_else(|| {
                    refuse(format!("{prefix}_ids has {} for {n_ids} outputs", w_id[j]))
                })?;
            let k = if binary { 0 } else { id };
            if !w_value[j].is_finite() {
                return Err(refuse(format!("{prefix}_weights has a non-finite value")));
            }
            leaf_weights
                .entry((w_tree[j], w_node[j]))
                .or_default()
                .push((k, f64::from(w_value[j])));
        }
        let mut out = Vec::with_capacity(trees.len());
        for (&tree, ids) in &trees {
            // Nodes in id order; children by id within the tree.
            let index: std::collections::HashMap<i64, usize> =
                ids.keys().enumerate().map(|(i, &id)| (id, i)).collect();
            let root = *ids
                .keys()
                .next()
                .ok_or_else(|| refuse(format!("tree {tree} has no node")))?;
            if root != 0 {
                return Err(refuse(format!("tree {tree}: no node 0 (its root)")));
            }
            let mut nodes = Vec::with_capacity(ids.len());
            for (&id, &i) in ids {
                let child = |c: i64| {
                    index.get(&c).copied().ok_or_else(|| {
                        refuse(format!("tree {tree}, node {id}: child {c} does not exist"))
                    })
                };
                if modes[i] == "LEAF" {
                    nodes.push(TreeNode::Leaf {
                        weights: leaf_weights.remove(&(tree, id)).unwrap_or_default(),
                    });
                    continue;
                }
                let mode = Comparison::parse(&modes[i]).ok_or_else(|| {
                    refuse(format!(
                        "tree {tree}, node {id}: mode {} (supported: BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, LEAF)",
                        modes[i]
                    ))
                })?;
                let feature = usize::try_from(features[i])
                    .ok()
                    .filter(|&f| f < n_features)
                    .ok_or_else(|| {
                        refuse(format!(
                            "tree {tree}, node {id}: feature {} of {n_features}",
                            features[i]
                        ))
                    })?;
                if !values[i].is_finite() {
                    return Err(refuse(format!(
                        "tree {tree}, node {id}: threshold {} is not finite",
                        values[i]
                    )));
                }
                nodes.push(TreeNode::Branch {
                    feature,
                    threshold: values[i],
                    mode,
                    yes: child(yes[i])?,
                    no: child(no[i])?,
                });
            }
            // Children must come after their parent: no cycle, every walk ends at a leaf.
            for (i, node) in nodes.iter().enumerate() {
                if let TreeNode::Branch { yes, no, .. } = node {
                    if *yes <= i || *no <= i {
                        return Err(refuse(format!(
                            "tree {tree}: a child precedes its parent (nodes must be numbered from the root down)"
                        )));
                    }
                }
            }
            out.push(ImportedTree { nodes });
        }
        if let Some(((tree, node), _)) = leaf_weights.into_iter().next() {
            return Err(refuse(format!(
                "a weight for node {node} of tree {tree}, which is not a leaf"
            )));
        }
        let mut base: Vec<f64> = a
            .floats("base_values")
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if base.is_empty() {
            base = vec![0.0; n_outputs];
        }
        if base.len() != n_outputs || base.iter().any(|v| !v.is_finite()) {
            return Err(refuse(format!(
                "{} base values for {n_outputs} outputs",
                base.len()
            )));
        }
        Ok(Self {
            trees: out,
            n_outputs,
            base,
            average: false,
        })
    }
}
