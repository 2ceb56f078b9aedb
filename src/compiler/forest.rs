//! The tree and forest compiler: trees on integer input levels become two bootstrapped lookup
//! layers (comparisons, then leaves) and a leveled readout of the summed leaf values. Trained
//! forests (`train::trees`: leaves vote for a class) and imported ensembles
//! (`compiler::imported`: leaves hold quantized weights) share this one compiler.

use crate::data::Split;
use crate::error::{Error, Result};
use crate::fhe::LeveledParameters;
use crate::model::CompiledModel;
use crate::program::{Decoder, LinearLayer, LookupLayer, OutputKind, Program, Step, TableFunction};
use crate::quant::{InputQuantizer, Quantization};
use crate::train::trees::{Node, TrainedForest};

/// A tree condition after quantization: constant, or one read of the comparison lookup.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Constant(bool),
    /// Index of the comparison output `[x_f > t]`.
    Bit(usize),
}

/// A node of a tree on integer levels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LevelNode {
    /// Rows with `level[feature] > t` go `right`, the others `left`.
    Split {
        feature: usize,
        t: i64,
        left: usize,
        right: usize,
    },
    /// Integer values added to the leaf outputs (`n_leaf_outputs`).
    Leaf { values: Vec<i64> },
}

/// Trees on integer levels and how their summed leaf values `s` become scores: `M s + bias`.
#[derive(Debug, Clone)]
pub(crate) struct LevelForest {
    /// Each tree's nodes, root first.
    pub trees: Vec<Vec<LevelNode>>,
    /// Values per leaf.
    pub n_leaf_outputs: usize,
    /// `M`, `n_scores × n_leaf_outputs`.
    pub readout: Vec<Vec<i64>>,
    /// Added to the scores (`n_scores`).
    pub bias: Vec<i64>,
    /// Bits per input level (2..=5).
    pub bits: u32,
    /// The client's quantizer.
    pub quantizer: InputQuantizer,
    /// How the client reads the scores.
    pub decoder: Decoder,
    /// `"depth-4 decision tree"`, `"10-tree depth-4 forest"`: the description's start.
    pub kind: String,
}

/// Compiles the quantized forest of a training run (`train::trees`) to a program of two
/// bootstrapped lookups (comparisons, then leaves: see this module); each leaf votes for its class, and the
/// scores are the votes per class.
///
/// # Errors
///
/// `Error::Compile` if the program is invalid or does not fit the parameter set.
pub fn compile_forest(trained: &TrainedForest, split: &Split<usize>) -> Result<CompiledModel> {
    let cfg = &trained.config;
    let forest = &trained.quantized;
    let n_classes = forest.n_classes;
    let n_trees = forest.trees.len() as i64;
    // Binary: one leaf output, the votes for class 1; class 0 has the others.
    let (n_leaf_outputs, readout, bias) = if n_classes == 2 {
        (1, vec![vec![-1], vec![1]], vec![n_trees, 0])
    } else {
        let identity = (0..n_classes)
            .map(|k| (0..n_classes).map(|j| i64::from(j == k)).collect())
            .collect();
        (n_classes, identity, vec![0; n_classes])
    };
    let trees = forest
        .trees
        .iter()
        .map(|tree| {
            tree.nodes
                .iter()
                .map(|node| match *node {
                    // linfa's rule `x >= threshold` on integer levels is `x > ceil(threshold) - 1`.
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => LevelNode::Split {
                        feature,
                        t: threshold.ceil() as i64 - 1,
                        left,
                        right,
                    },
                    Node::Leaf { class } => LevelNode::Leaf {
                        values: if n_classes == 2 {
                            vec![i64::from(class == 1)]
                        } else {
                            (0..n_classes).map(|k| i64::from(k == class)).collect()
                        },
                    },
                })
                .collect()
        })
        .collect();
    let kind = if forest.trees.len() == 1 {
        format!("depth-{} decision tree", cfg.depth)
    } else {
        format!("{}-tree depth-{} forest", forest.trees.len(), cfg.depth)
    };
    compile_level_forest(
        &LevelForest {
            trees,
            n_leaf_outputs,
            readout,
            bias,
            bits: cfg.input_bits,
            quantizer: trained.quantizer.clone(),
            decoder: Decoder {
                kind: OutputKind::Multiclass {
                    classes: split.classes.clone(),
                },
                scale: 1.0,
                offset: 0.0,
                link: Default::default(),
            },
            kind,
        },
        split,
    )
}

/// Compiles trees on integer levels to a program of two bootstrapped lookups:
/// 1. comparisons: one bootstrap per feature the trees split on; its table is a sign at the
///    half circle and each threshold `t` is one read, `reads` apart by whole levels, so
///    `[x > t]` for every threshold of the feature costs one blind rotation. Features sit
///    `2N / 2^(b+1)` positions apart (128 at 4 bits: a noise margin of 64 positions, 13 sigma,
///    tfhe's published failure rate);
/// 2. leaves: one bootstrap per split with a leaf child and per leaf output that either child
///    leaf sets: its input is `u = 2 s + c`, where `s` counts the conditions met on the path to
///    the split and `c` is the split's own comparison, so the table returns the leaf's value
///    exactly when the path is taken (`s` = depth); 16 boxes of 128 positions, depth up to 7;
/// 3. the readout: leaf values summed per output, then `M s + bias` (constant leaves fold into
///    the bias).
///
/// # Errors
///
/// `Error::Compile` if a tree is deeper than 7, or the program is invalid or does not fit the
/// parameter set.
pub(crate) fn compile_level_forest<T>(
    forest: &LevelForest,
    split: &Split<T>,
) -> Result<CompiledModel> {
    use std::collections::BTreeMap;

    let bits = forest.bits;
    let max_level = (1i64 << bits) - 1;
    let params = LeveledParameters::default();
    let positions = params.positions();
    let spacing = positions as i64 >> (bits + 1);
    let d = split.n_features();
    let n_out = forest.n_leaf_outputs;
    let n_scores = forest.readout.len();
    let splits = forest
        .trees
        .iter()
        .flatten()
        .filter(|n| matches!(n, LevelNode::Split { .. }))
        .count();

    // Conditions of every split: right when level > t.
    let mut thresholds: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for node in forest.trees.iter().flatten() {
        if let LevelNode::Split { feature, t, .. } = *node {
            if (0..max_level).contains(&t) {
                thresholds.entry(feature).or_default().push(t);
            }
        }
    }
    for ts in thresholds.values_mut() {
        ts.sort_unstable();
        ts.dedup();
    }
    let mut bit_index = BTreeMap::new();
    for (&f, ts) in &thresholds {
        for &t in ts {
            let next = bit_index.len();
            bit_index.insert((f, t), next);
        }
    }
    let condition = |feature: usize, t: i64| {
        if t < 0 {
            Condition::Constant(true)
        } else if t >= max_level {
            Condition::Constant(false)
        } else {
            Condition::Bit(bit_index[&(feature, t)])
        }
    };
    // Trees that never split on a varying feature (every feature constant, say) still
    // compile: their values are constants, the program one leveled layer (below).

    // Step 0: z = 2x + 1 for every feature used; step 1: its comparisons.
    let used: Vec<usize> = thresholds.keys().copied().collect();
    let mut w0 = vec![0i64; used.len() * d];
    for (row, &f) in used.iter().enumerate() {
        w0[row * d + f] = 2;
    }
    let comparisons = LookupLayer {
        positions,
        scale_num: spacing / 2,
        scale_shift: 0,
        mirror: 1,
        neurons: used
            .iter()
            .map(|f| TableFunction {
                window_start: 0,
                steps: Vec::new(),
                reads: thresholds[f]
                    .iter()
                    .map(|&t| (max_level - t) * spacing)
                    .collect(),
            })
            .collect(),
    };

    // Step 2: one row per (split with a leaf child, leaf output it sets), z = 2u + 1 = 4s + 2c + 1.
    let n_bits = bit_index.len();
    let mut rows: Vec<(Vec<i64>, i64)> = Vec::new();
    let mut tables: Vec<TableFunction> = Vec::new();
    let mut row_output: Vec<usize> = Vec::new();
    // The tree of each leaf row: one path per tree is taken, so at most one of a tree's rows
    // for one output is non-zero.
    let mut row_tree: Vec<usize> = Vec::new();
    let mut constant = vec![0i64; n_out];
    let box_size = positions as i64 / 32;
    for (tree_index, nodes) in forest.trees.iter().enumerate() {
        // (node, path of (condition, went right))
        let mut stack: Vec<(usize, Vec<(Condition, bool)>)> = vec![(0, Vec::new())];
        while let Some((i, path)) = stack.pop() {
            let (feature, t, left, right) = match &nodes[i] {
                LevelNode::Leaf { values } => {
                    // Only a tree that is a single leaf reaches here.
                    for (c, v) in constant.iter_mut().zip(values) {
                        *c += v;
                    }
                    continue;
                }
                LevelNode::Split {
                    feature,
                    t,
                    left,
                    right,
                } => (*feature, *t, *left, *right),
            };
            if path.len() >= 7 {
                return Err(Error::Compile(
                    "a tree deeper than 7: the leaf lookup has 16 boxes (depth up to 7)".into(),
                ));
            }
            let own = condition(feature, t);
            let leaf_values = |child: usize| match &nodes[child] {
                LevelNode::Leaf { values } => Some(values.clone()),
                LevelNode::Split { .. } => None,
            };
            let (left_leaf, right_leaf) = (leaf_values(left), leaf_values(right));
            if left_leaf.is_some() || right_leaf.is_some() {
                let depth = path.len() as i64;
                let mut weights = vec![0i64; n_bits];
                let mut bias = 1i64;
                let mut variable = false;
                for &(cond, went_right) in &path {
                    match (cond, went_right) {
                        (Condition::Constant(v), want) => bias += 4 * i64::from(v == want),
                        (Condition::Bit(b), true) => {
                            weights[b] += 4;
                            variable = true;
                        }
                        (Condition::Bit(b), false) => {
                            weights[b] -= 4;
                            bias += 4;
                            variable = true;
                        }
                    }
                }
                match own {
                    Condition::Constant(v) => bias += 2 * i64::from(v),
                    Condition::Bit(b) => {
                        weights[b] += 2;
                        variable = true;
                    }
                }
                let value = |leaf: &Option<Vec<i64>>, k: usize| leaf.as_ref().map_or(0, |v| v[k]);
                if variable {
                    for k in 0..n_out {
                        let (v0, v1) = (value(&left_leaf, k), value(&right_leaf, k));
                        if v0 == 0 && v1 == 0 {
                            continue;
                        }
                        let at = |u: i64| u * box_size;
                        let steps: Vec<(i64, i64)> = [
                            (at(2 * depth), v0),
                            (at(2 * depth + 1), v1 - v0),
                            (at(2 * depth + 2), -v1),
                        ]
                        .into_iter()
                        .filter(|s| s.1 != 0)
                        .collect();
                        rows.push((weights.clone(), bias));
                        tables.push(TableFunction {
                            window_start: 0,
                            steps,
                            reads: vec![0],
                        });
                        row_output.push(k);
                        row_tree.push(tree_index);
                    }
                } else {
                    // Every condition on the way is constant (and met: unreachable subtrees are
                    // never visited), so the value is known.
                    let goes_right = matches!(own, Condition::Constant(true));
                    let leaf = if goes_right { &right_leaf } else { &left_leaf };
                    for (k, c) in constant.iter_mut().enumerate() {
                        *c += value(leaf, k);
                    }
                }
            }
            for (child, went_right) in [(left, false), (right, true)] {
                let reachable = !matches!(own, Condition::Constant(v) if v != went_right);
                if reachable && leaf_values(child).is_none() {
                    let mut p = path.clone();
                    p.push((own, went_right));
                    stack.push((child, p));
                }
            }
        }
    }
    // The readout's bias with the constant leaves folded in.
    let bias: Vec<i64> = forest
        .readout
        .iter()
        .zip(&forest.bias)
        .map(|(m, b)| b + m.iter().zip(&constant).map(|(m, c)| m * c).sum::<i64>())
        .collect();
    let quantization = Quantization {
        input_bits: bits,
        weight_bits: bits,
    };
    if rows.is_empty() {
        // The values do not depend on the input: one leveled layer of constant scores.
        let program = Program {
            n_inputs: d,
            input_bits: bits,
            steps: vec![Step::Linear(LinearLayer::new(
                d,
                n_scores,
                vec![0; d * n_scores],
                bias,
            )?)],
        };
        return CompiledModel::new(
            split,
            quantization,
            forest.quantizer.clone(),
            program,
            forest.decoder.clone(),
            format!(
                "{} of constant values: no split depends on a varying feature",
                forest.kind
            ),
        );
    }
    let leaves = LookupLayer {
        positions,
        scale_num: box_size / 2,
        scale_shift: 0,
        mirror: 0,
        neurons: tables,
    };

    // Step 4: the readout over the leaf rows.
    let g = rows.len();
    let mut groups: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for (j, (&t, &o)) in row_tree.iter().zip(&row_output).enumerate() {
        groups.entry((t, o)).or_default().push(j);
    }
    let exclusive: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    let mut w4 = vec![0i64; n_scores * g];
    for (k, m) in forest.readout.iter().enumerate() {
        for (j, &o) in row_output.iter().enumerate() {
            w4[k * g + j] = m[o];
        }
    }
    let steps = vec![
        Step::Linear(LinearLayer::new(d, used.len(), w0, vec![1; used.len()])?),
        Step::Lookup(comparisons),
        Step::Linear(LinearLayer::new(
            n_bits,
            g,
            rows.iter().flat_map(|r| r.0.iter().copied()).collect(),
            rows.iter().map(|r| r.1).collect(),
        )?),
        Step::Lookup(leaves),
        Step::Linear(LinearLayer::new(g, n_scores, w4, bias)?.with_exclusive(exclusive)?),
    ];
    let program = Program {
        n_inputs: d,
        input_bits: bits,
        steps,
    };
    let description = format!(
        "{}: {splits} splits, {n_bits} comparisons on {} features ({bits}-bit) in {} bootstraps, {g} leaf lookups",
        forest.kind,
        used.len(),
        used.len(),
    );
    CompiledModel::new(
        split,
        quantization,
        forest.quantizer.clone(),
        program,
        forest.decoder.clone(),
        description,
    )
}
