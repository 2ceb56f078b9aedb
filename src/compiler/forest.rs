//! The tree and forest compiler: a quantized forest (`train::trees`) becomes two bootstrapped
//! lookup layers (comparisons, then leaves) and a sum of votes per class.

use crate::data::Split;
use crate::error::Result;
use crate::fhe::LeveledParameters;
use crate::model::CompiledModel;
use crate::program::{Decoder, LinearLayer, LookupLayer, OutputKind, Program, Step, TableFunction};
use crate::quant::Quantization;
use crate::train::trees::{Node, TrainedForest};

/// A tree condition after quantization: constant, or one read of the comparison lookup.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Constant(bool),
    /// Index of the comparison output `[x_f > t]`.
    Bit(usize),
}

/// Compiles the quantized forest of a training run (`train::trees`) to a program of two
/// bootstrapped lookups:
/// 1. comparisons: one bootstrap per feature the forest splits on; its table is a sign at the
///    half circle and each threshold `t` is one read, `reads` apart by whole levels, so
///    `[x > t]` for every threshold of the feature costs one blind rotation. Features sit
///    `2N / 2^(b+1)` positions apart (128 at 4 bits: a noise margin of 64 positions, 13 sigma,
///    tfhe's published failure rate);
/// 2. leaves: one bootstrap per split with a leaf child (per class beyond two): its input is
///    `u = 2 s + c`, where `s` counts the conditions met on the path to the split and `c` is
///    the split's own comparison, so the table returns the leaf's vote exactly when the path
///    is taken (`s` = depth); 16 boxes of 128 positions, depth up to 7;
/// 3. the votes summed per class (constant votes fold into the biases).
///
/// # Errors
///
/// `Error::Compile` if the program is invalid or does not fit the parameter set.
pub fn compile_forest(trained: &TrainedForest, split: &Split<usize>) -> Result<CompiledModel> {
    use std::collections::BTreeMap;

    let cfg = &trained.config;
    let forest = &trained.quantized;
    let bits = cfg.input_bits;
    let max_level = (1i64 << bits) - 1;
    let params = LeveledParameters::default();
    let positions = params.positions();
    let spacing = positions as i64 >> (bits + 1);
    let d = split.n_features();
    let n_classes = forest.n_classes;

    // Conditions of every split: right when x > t, t = ceil(threshold) - 1 on integer levels.
    let mut thresholds: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    let raw_t = |threshold: f64| threshold.ceil() as i64 - 1;
    for tree in &forest.trees {
        for node in &tree.nodes {
            if let Node::Split {
                feature, threshold, ..
            } = *node
            {
                let t = raw_t(threshold);
                if (0..max_level).contains(&t) {
                    thresholds.entry(feature).or_default().push(t);
                }
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
    let condition = |feature: usize, threshold: f64| {
        let t = raw_t(threshold);
        if t < 0 {
            Condition::Constant(true)
        } else if t >= max_level {
            Condition::Constant(false)
        } else {
            Condition::Bit(bit_index[&(feature, t)])
        }
    };
    // A forest that never splits on a varying feature (every feature constant, say) still
    // compiles: its votes are constants, the program one leveled layer (below).

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

    // Step 2: one row per (split with a leaf child, class), z = 2u + 1 = 4s + 2c + 1.
    let n_bits = bit_index.len();
    let voted: Vec<usize> = if n_classes == 2 {
        vec![1]
    } else {
        (0..n_classes).collect()
    };
    let mut rows: Vec<(Vec<i64>, i64)> = Vec::new();
    let mut tables: Vec<TableFunction> = Vec::new();
    let mut row_class: Vec<usize> = Vec::new();
    let mut constant_votes = vec![0i64; n_classes];
    let box_size = positions as i64 / 32;
    for tree in &forest.trees {
        // (node, path of (condition, went right))
        let mut stack: Vec<(usize, Vec<(Condition, bool)>)> = vec![(0, Vec::new())];
        while let Some((i, path)) = stack.pop() {
            let (feature, threshold, left, right) = match tree.nodes[i] {
                Node::Leaf { class } => {
                    // Only a tree that is a single leaf reaches here.
                    constant_votes[class] += 1;
                    continue;
                }
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => (feature, threshold, left, right),
            };
            let own = condition(feature, threshold);
            let leaf_class = |child: usize| match tree.nodes[child] {
                Node::Leaf { class } => Some(class),
                Node::Split { .. } => None,
            };
            let (left_leaf, right_leaf) = (leaf_class(left), leaf_class(right));
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
                if variable {
                    for &k in &voted {
                        let vote = |leaf: Option<usize>| i64::from(leaf == Some(k));
                        let (v0, v1) = (vote(left_leaf), vote(right_leaf));
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
                        row_class.push(k);
                    }
                } else {
                    // Every condition on the way is constant (and met: unreachable subtrees are
                    // never visited), so the vote is known.
                    let goes_right = matches!(own, Condition::Constant(true));
                    if let Some(class) = if goes_right { right_leaf } else { left_leaf } {
                        constant_votes[class] += 1;
                    }
                }
            }
            for (child, went_right) in [(left, false), (right, true)] {
                let reachable = !matches!(own, Condition::Constant(v) if v != went_right);
                if reachable && leaf_class(child).is_none() {
                    let mut p = path.clone();
                    p.push((own, went_right));
                    stack.push((child, p));
                }
            }
        }
    }
    if rows.is_empty() {
        // The votes do not depend on the input: one leveled layer of constant scores.
        let mut votes = constant_votes.clone();
        if n_classes == 2 {
            votes[0] = forest.trees.len() as i64 - constant_votes[1];
        }
        let program = Program {
            n_inputs: d,
            input_bits: bits,
            steps: vec![Step::Linear(LinearLayer::new(
                d,
                n_classes,
                vec![0; d * n_classes],
                votes,
            )?)],
        };
        let decoder = Decoder {
            kind: OutputKind::Multiclass {
                classes: split.classes.clone(),
            },
            scale: 1.0,
            offset: 0.0,
        };
        return CompiledModel::new(
            split,
            Quantization {
                input_bits: bits,
                weight_bits: bits,
            },
            trained.quantizer.clone(),
            program,
            decoder,
            format!(
                "{} of constant votes: no split depends on a varying feature",
                if forest.trees.len() == 1 {
                    "decision tree".to_string()
                } else {
                    format!("{}-tree forest", forest.trees.len())
                }
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

    // Step 4: votes per class. Binary: score 1 = its votes, score 0 = trees - score 1.
    let g = rows.len();
    let trees = forest.trees.len() as i64;
    let mut w4 = vec![0i64; n_classes * g];
    let mut b4 = constant_votes.clone();
    for (j, &k) in row_class.iter().enumerate() {
        w4[k * g + j] = 1;
    }
    if n_classes == 2 {
        w4[..g].fill(-1);
        b4[0] = trees - constant_votes[1];
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
        Step::Linear(LinearLayer::new(g, n_classes, w4, b4)?),
    ];
    let program = Program {
        n_inputs: d,
        input_bits: bits,
        steps,
    };
    let decoder = Decoder {
        kind: OutputKind::Multiclass {
            classes: split.classes.clone(),
        },
        scale: 1.0,
        offset: 0.0,
    };
    let kind = if forest.trees.len() == 1 {
        format!("depth-{} decision tree", cfg.depth)
    } else {
        format!("{}-tree depth-{} forest", forest.trees.len(), cfg.depth)
    };
    let description = format!(
        "{kind}: {} splits, {} comparisons on {} features ({}-bit) in {} bootstraps, {} leaf lookups",
        forest.splits(),
        n_bits,
        used.len(),
        bits,
        used.len(),
        g
    );
    let quantization = Quantization {
        input_bits: bits,
        weight_bits: bits,
    };
    CompiledModel::new(
        split,
        quantization,
        trained.quantizer.clone(),
        program,
        decoder,
        description,
    )
}
