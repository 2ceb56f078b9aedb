//! The graph walk: nodes in the order the file gives them (ONNX requires a topological order),
//! each tensor tracked symbolically as an affine map of the input through ReLU layers, a
//! constant, or a value derived from the model's scores (labels, probabilities, `ZipMap`s:
//! formatting the reduction does not need). One operator decides what the scores mean.

use std::collections::HashMap;

use ndarray::Array2;
use onnx_protobuf::{ModelProto, NodeProto};

use super::tensor::{tensor, Attributes, Tensor};
use super::trees::TreeEnsemble;
use super::{Body, Dense, Head, OnnxModel};
use crate::error::{Error, Result};

/// The operators read, for error messages.
const SUPPORTED: &str =
    "Scaler, Cast, Identity, Flatten, Reshape, Add, Sub, Mul, Div (by constants), \
MatMul, Gemm, Relu, Sigmoid and Softmax (last activation only), LinearClassifier, \
LinearRegressor, TreeEnsembleClassifier, TreeEnsembleRegressor, and after them ZipMap, \
Normalizer, ArgMax, ArrayFeatureExtractor, Concat, Constant";

/// Every operator the walk reads (where it may appear is checked as it goes).
const KNOWN: [&str; 24] = [
    "Scaler",
    "Cast",
    "Identity",
    "Flatten",
    "Reshape",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "MatMul",
    "Gemm",
    "Relu",
    "Sigmoid",
    "Softmax",
    "LinearClassifier",
    "LinearRegressor",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
    "Normalizer",
    "ArgMax",
    "ArrayFeatureExtractor",
    "Concat",
    "Constant",
];

#[derive(Debug, Clone)]
enum Sym {
    /// `output(relu(...relu(hidden[0] x)))`: a real vector computed from the input.
    Net { hidden: Vec<Dense>, output: Dense },
    /// A constant tensor.
    Const(Tensor),
    /// Derived from the model's scores (a label, probabilities, a map of them).
    Final { source: String },
}

/// What one operator concluded the model is.
struct Terminal {
    body: Body,
    head: Head,
    classes: Option<Vec<i64>>,
    node: String,
}

struct Walk<'a> {
    syms: HashMap<String, Sym>,
    initializers: HashMap<&'a str, &'a onnx_protobuf::TensorProto>,
    terminal: Option<Terminal>,
    /// Class labels found by an `ArrayFeatureExtractor` on constant integers (an MLP's).
    classes: Option<Vec<i64>>,
    operators: Vec<String>,
}

fn node_name(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// Reduces a decoded model to its body and head.
pub(super) fn reduce(proto: &ModelProto) -> Result<OnnxModel> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::ModelFile("the ONNX model has no graph".into()))?;
    // Operators first: a model with an unsupported one is refused at that node, whatever else
    // the graph holds.
    for (index, node) in graph.node.iter().enumerate() {
        if !KNOWN.contains(&node.op_type.as_str()) {
            return Err(refuse(
                &node_name(node, index),
                &node.op_type,
                &format!(
                    "operator {} is not supported (supported: {SUPPORTED})",
                    node.op_type
                ),
            ));
        }
    }
    let initializers: HashMap<&str, &onnx_protobuf::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains_key(i.name.as_str()))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        _ => {
            return Err(Error::ModelFile(format!(
                "the graph has {} inputs; fhe-ml reads models with one input, a float tensor of n_rows × n_features",
                inputs.len()
            )))
        }
    };
    let n_features = input_width(input)?;
    let mut walk = Walk {
        syms: HashMap::new(),
        initializers,
        terminal: None,
        classes: None,
        operators: Vec::new(),
    };
    walk.syms.insert(
        input.name.clone(),
        Sym::Net {
            hidden: Vec::new(),
            output: Dense::identity(n_features),
        },
    );
    for (index, node) in graph.node.iter().enumerate() {
        walk.node(node, &node_name(node, index))?;
        if !walk.operators.contains(&node.op_type) {
            walk.operators.push(node.op_type.clone());
        }
    }
    let producer = format!("{} {}", proto.producer_name, proto.producer_version)
        .trim()
        .to_string();
    let (body, head, classes) = match walk.terminal {
        Some(t) => {
            let classes = match (t.classes, walk.classes) {
                (Some(c), _) | (None, Some(c)) => Some(c),
                (None, None) => None,
            };
            (t.body, t.head, classes)
        }
        None => {
            // No classifier or regressor operator: the graph's output is the network's
            // value (a PyTorch model): one value is a regression, several are class logits.
            let nets: Vec<_> = graph
                .output
                .iter()
                .filter_map(|o| match walk.syms.get(&o.name) {
                    Some(Sym::Net { hidden, output }) => Some((hidden.clone(), output.clone())),
                    _ => None,
                })
                .collect();
            let (hidden, output) = match nets.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(Error::ModelFile(format!(
                        "the graph has {} computed outputs; fhe-ml reads one (scores, logits or a value)",
                        nets.len()
                    )))
                }
            };
            let width = output.n_outputs();
            if width == 1 {
                (Body::Net { hidden, output }, Head::Regression, None)
            } else {
                let classes = walk
                    .classes
                    .clone()
                    .unwrap_or_else(|| (0..width as i64).collect());
                (Body::Net { hidden, output }, Head::Argmax, Some(classes))
            }
        }
    };
    let n_scores = match &body {
        Body::Net { output, .. } => output.n_outputs(),
        Body::Trees(t) => t.n_outputs,
    };
    let expected_classes = match head {
        Head::Regression => 0,
        Head::Logistic | Head::Probability | Head::Decision => 2,
        Head::Softmax | Head::Argmax => n_scores,
    };
    let classes = match (head, classes) {
        (Head::Regression, _) => None,
        (_, Some(c)) if c.len() == expected_classes => Some(c),
        (_, None) => Some((0..expected_classes as i64).collect()),
        (_, Some(c)) => {
            return Err(Error::ModelFile(format!(
                "{} class labels for {expected_classes} classes",
                c.len()
            )))
        }
    };
    let model = OnnxModel {
        producer,
        operators: walk.operators,
        n_features,
        classes,
        body,
        head,
    };
    if let Body::Net { hidden, output } = &model.body {
        let finite = |d: &Dense| d.weights.iter().chain(&d.bias).all(|v| v.is_finite());
        if !hidden.iter().all(finite) || !finite(output) {
            return Err(Error::ModelFile("the model has non-finite weights".into()));
        }
    }
    Ok(model)
}

/// The number of features: the last dimension of the input's declared shape.
fn input_width(input: &onnx_protobuf::ValueInfoProto) -> Result<usize> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value;
    use onnx_protobuf::type_proto::Value as Type;
    let bad = |m: &str| Error::ModelFile(format!("input {:?}: {m}", input.name));
    let tensor = match input.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Type::TensorType(t)) => t,
        _ => return Err(bad("not a tensor")),
    };
    // float or double; integer inputs (a one-hot pipeline's categories) are not read.
    if tensor.elem_type != 1 && tensor.elem_type != 11 {
        return Err(bad(&format!(
            "element type {} (supported: float, double)",
            tensor.elem_type
        )));
    }
    let dims = &tensor
        .shape
        .as_ref()
        .ok_or_else(|| bad("no declared shape"))?
        .dim;
    if dims.len() != 2 {
        return Err(bad(&format!(
            "rank {} (supported: 2, n_rows × n_features)",
            dims.len()
        )));
    }
    match &dims[1].value {
        Some(Value::DimValue(n)) if *n > 0 => Ok(*n as usize),
        _ => Err(bad("the number of features is not declared")),
    }
}

impl Walk<'_> {
    fn sym(&self, name: &str, node: &str, op: &str) -> Result<Sym> {
        if let Some(s) = self.syms.get(name) {
            return Ok(s.clone());
        }
        if let Some(t) = self.initializers.get(name) {
            return Ok(Sym::Const(tensor(t)?));
        }
        Err(refuse(
            node,
            op,
            &format!("input {name:?} is not defined before it"),
        ))
    }

    fn set(&mut self, node: &NodeProto, i: usize, sym: Sym) {
        if let Some(name) = node.output.get(i) {
            if !name.is_empty() {
                self.syms.insert(name.clone(), sym);
            }
        }
    }

    fn finish(&mut self, node: &NodeProto, name: &str, t: Terminal) -> Result<()> {
        if let Some(prev) = &self.terminal {
            return Err(refuse(
                name,
                &node.op_type,
                &format!(
                    "the graph already produced the model's scores at node {}; one model per file",
                    prev.node
                ),
            ));
        }
        self.terminal = Some(t);
        for i in 0..node.output.len() {
            self.set(
                node,
                i,
                Sym::Final {
                    source: node.op_type.clone(),
                },
            );
        }
        Ok(())
    }

    fn node(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let op = node.op_type.as_str();
        if !matches!(node.domain.as_str(), "" | "ai.onnx" | "ai.onnx.ml") {
            return Err(refuse(
                name,
                op,
                &format!("domain {:?} (supported: ai.onnx, ai.onnx.ml)", node.domain),
            ));
        }
        let a = Attributes::new(node);
        if op == "Constant" {
            let t = a
                .tensor("value")
                .ok_or_else(|| refuse(name, op, "only a tensor `value` is supported"))?;
            self.set(node, 0, Sym::Const(tensor(t)?));
            return Ok(());
        }
        let inputs: Vec<Option<Sym>> = node
            .input
            .iter()
            .map(|i| {
                if i.is_empty() {
                    Ok(None)
                } else {
                    self.sym(i, name, op).map(Some)
                }
            })
            .collect::<Result<_>>()?;
        let first = inputs.first().cloned().flatten();
        // Formatting of the scores: anything downstream of them stays formatting.
        if let Some(Sym::Final { source }) = inputs
            .iter()
            .flatten()
            .find(|s| matches!(s, Sym::Final { .. }))
        {
            return self.formatting(node, name, &inputs, source.clone());
        }
        let (hidden, output) = match (&first, inputs.get(1)) {
            (Some(Sym::Net { hidden, output }), _) => (hidden.clone(), output.clone()),
            // A constant first: `c - x`, `c + x`, `c * x`.
            (Some(Sym::Const(c)), Some(Some(Sym::Net { hidden, output })))
                if matches!(op, "Add" | "Mul" | "Sub") =>
            {
                let v = broadcast(c, output.n_outputs(), name, op)?;
                let output = match op {
                    "Sub" => elementwise(output, |x| -x, &v, |a, c| a + c),
                    "Add" => elementwise(output, |x| x, &v, |a, c| a + c),
                    _ => scale_rows(output, &v),
                };
                let hidden = hidden.clone();
                self.set(node, 0, Sym::Net { hidden, output });
                return Ok(());
            }
            _ => {
                return Err(refuse(
                    name,
                    op,
                    &format!(
                        "its first input is not the model's features (supported: {SUPPORTED})"
                    ),
                ))
            }
        };
        let width = output.n_outputs();
        let constant = |i: usize| -> Result<Tensor> {
            match inputs.get(i).cloned().flatten() {
                Some(Sym::Const(t)) => Ok(t),
                Some(_) => Err(refuse(
                    name,
                    op,
                    "both operands are computed tensors; only a constant second operand is supported",
                )),
                None => Err(refuse(name, op, "an operand is missing")),
            }
        };
        let net = |output: Dense| Sym::Net {
            hidden: hidden.clone(),
            output,
        };
        match op {
            "Identity" => self.set(node, 0, net(output)),
            "Cast" => {
                let to = a.int("to", 0);
                if to != 1 && to != 11 {
                    return Err(refuse(
                        name,
                        op,
                        &format!("cast of the features to type {to} (supported: float, double)"),
                    ));
                }
                self.set(node, 0, net(output));
            }
            "Flatten" => {
                if a.int("axis", 1) != 1 {
                    return Err(refuse(name, op, "axis other than 1"));
                }
                self.set(node, 0, net(output));
            }
            "Reshape" => {
                let shape = constant(1)?;
                let dims = shape.ints().unwrap_or(&[]).to_vec();
                let ok = match dims.as_slice() {
                    [_, w] => *w == -1 || *w == width as i64,
                    [w] => *w == width as i64 && width == 1,
                    _ => false,
                };
                if !ok {
                    return Err(refuse(name, op, &format!("reshape to {dims:?} of {width} values per row (supported: [-1, {width}])")));
                }
                self.set(node, 0, net(output));
            }
            "Scaler" => {
                let offset = widen(&a.floats("offset"), width, name, op, "offset")?;
                let scale = widen(&a.floats("scale"), width, name, op, "scale")?;
                let shifted = elementwise(&output, |x| x, &offset, |a, c| a - c);
                self.set(node, 0, net(scale_rows(&shifted, &scale)));
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let v = broadcast(&constant(1)?, width, name, op)?;
                let out = match op {
                    "Add" => elementwise(&output, |x| x, &v, |a, c| a + c),
                    "Sub" => elementwise(&output, |x| x, &v, |a, c| a - c),
                    "Mul" => scale_rows(&output, &v),
                    _ => {
                        if v.contains(&0.0) {
                            return Err(refuse(name, op, "division by zero"));
                        }
                        scale_rows(&output, &v.iter().map(|c| 1.0 / c).collect::<Vec<_>>())
                    }
                };
                self.set(node, 0, net(out));
            }
            "MatMul" => {
                let w = constant(1)?;
                let layer = matrix(&w, false, width, name, op)?;
                self.set(node, 0, net(layer.after(&output)));
            }
            "Gemm" => {
                if a.int("transA", 0) != 0 {
                    return Err(refuse(name, op, "transA = 1 (supported: 0)"));
                }
                let (alpha, beta) = (
                    f64::from(a.float("alpha", 1.0)),
                    f64::from(a.float("beta", 1.0)),
                );
                let mut layer = matrix(&constant(1)?, a.int("transB", 0) == 1, width, name, op)?;
                layer.weights *= alpha;
                if inputs.get(2).cloned().flatten().is_some() {
                    let c = broadcast(&constant(2)?, layer.n_outputs(), name, op)?;
                    layer.bias = c.iter().map(|c| beta * c).collect();
                }
                self.set(node, 0, net(layer.after(&output)));
            }
            "Relu" => {
                let mut hidden = hidden.clone();
                hidden.push(output);
                self.set(
                    node,
                    0,
                    Sym::Net {
                        hidden,
                        output: Dense::identity(width),
                    },
                );
            }
            "Sigmoid" | "Softmax" => {
                if op == "Sigmoid" && width != 1 {
                    return Err(refuse(name, op, &format!("a sigmoid over {width} values: supported as the last activation of a binary classifier (one value); hidden layers: Relu")));
                }
                if op == "Softmax" && !matches!(a.int("axis", -1), -1 | 1) {
                    return Err(refuse(name, op, "softmax over an axis other than the last"));
                }
                let head = if op == "Sigmoid" {
                    Head::Logistic
                } else {
                    Head::Softmax
                };
                self.finish(
                    node,
                    name,
                    Terminal {
                        body: Body::Net { hidden, output },
                        head,
                        classes: None,
                        node: name.to_string(),
                    },
                )?;
            }
            "LinearClassifier" | "LinearRegressor" => {
                let t = self.linear(node, name, &a, hidden, output)?;
                self.finish(node, name, t)?;
            }
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                if !hidden.is_empty() || output != Dense::identity(width) {
                    return Err(refuse(name, op, "the trees read a transformed input; supported: trees on the model's raw features (trees need no scaler)"));
                }
                let t = self.trees(node, name, &a, width)?;
                self.finish(node, name, t)?;
            }
            _ => {
                return Err(refuse(
                    name,
                    op,
                    &format!("operator {op} is not supported (supported: {SUPPORTED})"),
                ))
            }
        }
        Ok(())
    }

    /// Operators after the scores: they format them and change no prediction.
    fn formatting(
        &mut self,
        node: &NodeProto,
        name: &str,
        inputs: &[Option<Sym>],
        source: String,
    ) -> Result<()> {
        let op = node.op_type.as_str();
        let a = Attributes::new(node);
        match op {
            "ZipMap" | "ArgMax" | "Concat" | "Cast" | "Reshape" | "Identity" | "Flatten" => {}
            "Normalizer" if a.string("norm", "MAX") == "L1" && matches!(source.as_str(), "LinearClassifier" | "Softmax") => {}
            "Sub" if matches!(inputs.first(), Some(Some(Sym::Const(c))) if c.floats() == [1.0]) => {}
            "ArrayFeatureExtractor" => {
                if let Some(Some(Sym::Const(c))) = inputs.first() {
                    if let Some(ints) = c.ints() {
                        self.classes = Some(ints.to_vec());
                    }
                }
            }
            _ => {
                return Err(refuse(
                    name,
                    op,
                    &format!("reads the output of {source}, which must be the model's last operator (only ZipMap, Normalizer L1, ArgMax, ArrayFeatureExtractor, Concat, Cast, Reshape and 1 - p may follow it)"),
                ))
            }
        }
        for i in 0..node.output.len() {
            self.set(
                node,
                i,
                Sym::Final {
                    source: source.clone(),
                },
            );
        }
        Ok(())
    }

    fn linear(
        &self,
        node: &NodeProto,
        name: &str,
        a: &Attributes<'_>,
        hidden: Vec<Dense>,
        input: Dense,
    ) -> Result<Terminal> {
        let op = node.op_type.as_str();
        let width = input.n_outputs();
        let unknown = a.unknown(&[
            "coefficients",
            "intercepts",
            "classlabels_ints",
            "classlabels_strings",
            "multi_class",
            "post_transform",
            "targets",
        ]);
        if !unknown.is_empty() {
            return Err(refuse(
                name,
                op,
                &format!("attribute(s) {} not supported", unknown.join(", ")),
            ));
        }
        let coefficients: Vec<f64> = a
            .floats("coefficients")
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if coefficients.is_empty() || !coefficients.len().is_multiple_of(width) {
            return Err(refuse(
                name,
                op,
                &format!("{} coefficients for {width} inputs", coefficients.len()),
            ));
        }
        let rows = coefficients.len() / width;
        let mut intercepts: Vec<f64> = a
            .floats("intercepts")
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if intercepts.is_empty() {
            intercepts = vec![0.0; rows];
        }
        if intercepts.len() != rows {
            return Err(refuse(
                name,
                op,
                &format!(
                    "{} intercepts for {rows} rows of coefficients",
                    intercepts.len()
                ),
            ));
        }
        let layer = Dense {
            weights: Array2::from_shape_vec((rows, width), coefficients)
                .map_err(|e| refuse(name, op, &e.to_string()))?,
            bias: intercepts,
        };
        let post = a.string("post_transform", "NONE");
        let body = |layer: Dense| Body::Net {
            hidden: hidden.clone(),
            output: layer.after(&input),
        };
        if op == "LinearRegressor" {
            if a.int("targets", 1) != 1 || rows != 1 || post != "NONE" {
                return Err(refuse(
                    name,
                    op,
                    &format!(
                        "{rows} targets with post_transform {post} (supported: one target, NONE)"
                    ),
                ));
            }
            return Ok(Terminal {
                body: body(layer),
                head: Head::Regression,
                classes: None,
                node: name.to_string(),
            });
        }
        if !a.strings("classlabels_strings").is_empty() {
            return Err(refuse(
                name,
                op,
                "string class labels (supported: integer labels)",
            ));
        }
        let classes = a.ints("classlabels_ints");
        let n = classes.len();
        let negated = rows == 2
            && layer
                .weights
                .row(0)
                .iter()
                .zip(layer.weights.row(1))
                .all(|(a, b)| *a == -*b)
            && layer.bias[0] == -layer.bias[1];
        let (layer, head) = match (n, rows, post.as_str()) {
            (2, 1, "LOGISTIC") => (layer, Head::Logistic),
            (2, 1, "NONE") => (layer, Head::Decision),
            (2, 2, "LOGISTIC" | "NONE") if negated => {
                let one = Dense { weights: layer.weights.slice(ndarray::s![1..2, ..]).to_owned(), bias: vec![layer.bias[1]] };
                (one, if post == "LOGISTIC" { Head::Logistic } else { Head::Decision })
            }
            (n, r, "SOFTMAX") if n == r && n >= 2 => (layer, Head::Softmax),
            (n, r, "NONE") if n == r && n >= 2 => (layer, Head::Argmax),
            _ => {
                return Err(refuse(name, op, &format!(
                    "{n} classes, {rows} rows of coefficients, post_transform {post} (supported: NONE, LOGISTIC or SOFTMAX with one row per class, or one row for two classes)"
                )))
            }
        };
        Ok(Terminal {
            body: body(layer),
            head,
            classes: Some(classes),
            node: name.to_string(),
        })
    }

    fn trees(
        &self,
        node: &NodeProto,
        name: &str,
        a: &Attributes<'_>,
        n_features: usize,
    ) -> Result<Terminal> {
        let op = node.op_type.as_str();
        let post = a.string("post_transform", "NONE");
        let refuse_here = |m: String| refuse(name, op, &m);
        if op == "TreeEnsembleRegressor" {
            if a.int("n_targets", 1) != 1 || post != "NONE" {
                return Err(refuse_here(format!(
                    "{} targets with post_transform {post} (supported: one target, NONE)",
                    a.int("n_targets", 1)
                )));
            }
            let average = match a.string("aggregate_function", "SUM").as_str() {
                "SUM" => false,
                "AVERAGE" => true,
                other => {
                    return Err(refuse_here(format!(
                        "aggregate_function {other} (supported: SUM, AVERAGE)"
                    )))
                }
            };
            let mut ensemble =
                TreeEnsemble::parse(a, "target", 1, false, n_features, &refuse_here)?;
            ensemble.average = average;
            return Ok(Terminal {
                body: Body::Trees(ensemble),
                head: Head::Regression,
                classes: None,
                node: name.to_string(),
            });
        }
        if !a.strings("classlabels_strings").is_empty() {
            return Err(refuse_here(
                "string class labels (supported: integer labels)".into(),
            ));
        }
        let classes = a.ints("classlabels_int64s");
        let ids = a.ints("class_ids");
        // ONNX-ML's binary case: two labels and every weight on one class id, whose score is
        // the second class's.
        let binary = classes.len() == 2 && ids.windows(2).all(|w| w[0] == w[1]);
        let ensemble =
            TreeEnsemble::parse(a, "class", classes.len(), binary, n_features, &refuse_here)?;
        let head = match (binary, post.as_str()) {
            (true, "NONE") if ensemble.weights_non_negative() => Head::Probability,
            (true, "NONE") => Head::Decision,
            (true, "LOGISTIC") => Head::Logistic,
            (false, "NONE") => Head::Argmax,
            (false, "SOFTMAX") => Head::Softmax,
            _ => return Err(refuse_here(format!("post_transform {post} for {} classes (supported: NONE, LOGISTIC for two classes, SOFTMAX)", classes.len()))),
        };
        Ok(Terminal {
            body: Body::Trees(ensemble),
            head,
            classes: Some(classes),
            node: name.to_string(),
        })
    }
}

fn refuse(node: &str, op: &str, message: &str) -> Error {
    Error::Onnx {
        node: node.to_string(),
        op: op.to_string(),
        message: message.to_string(),
    }
}

/// A per-feature attribute of one value (broadcast) or `width` values.
fn widen(v: &[f32], width: usize, node: &str, op: &str, what: &str) -> Result<Vec<f64>> {
    match v.len() {
        1 => Ok(vec![f64::from(v[0]); width]),
        n if n == width => Ok(v.iter().map(|&x| f64::from(x)).collect()),
        n => Err(refuse(
            node,
            op,
            &format!("{n} {what} values for {width} features"),
        )),
    }
}

/// A constant operand broadcast over a row of `width` values: a scalar, `[width]` or
/// `[1, width]`.
fn broadcast(t: &Tensor, width: usize, node: &str, op: &str) -> Result<Vec<f64>> {
    let v = t.floats();
    let shape_ok = match t.dims.as_slice() {
        [] => true,
        [n] => *n == width || *n == 1,
        [1, n] => *n == width || *n == 1,
        _ => false,
    };
    if !shape_ok {
        return Err(refuse(
            node,
            op,
            &format!(
                "a constant of shape {:?} against {width} values per row",
                t.dims
            ),
        ));
    }
    Ok(if v.len() == 1 { vec![v[0]; width] } else { v })
}

/// `x ↦ x W` for a constant `W` of `width × n` (`transposed`: `n × width`), as a dense layer.
fn matrix(t: &Tensor, transposed: bool, width: usize, node: &str, op: &str) -> Result<Dense> {
    let [r, c] = t.dims.as_slice() else {
        return Err(refuse(
            node,
            op,
            &format!("a weight tensor of rank {} (supported: 2)", t.dims.len()),
        ));
    };
    let m = Array2::from_shape_vec((*r, *c), t.floats())
        .map_err(|e| refuse(node, op, &e.to_string()))?;
    let w = if transposed { m } else { m.reversed_axes() };
    if w.ncols() != width {
        return Err(refuse(
            node,
            op,
            &format!(
                "weights for {} inputs, the tensor has {width} values per row",
                w.ncols()
            ),
        ));
    }
    let n = w.nrows();
    Ok(Dense {
        weights: w,
        bias: vec![0.0; n],
    })
}

/// `f(row o) then combine(bias, v[o])` on every output row.
fn elementwise(
    d: &Dense,
    f: impl Fn(f64) -> f64,
    v: &[f64],
    combine: impl Fn(f64, f64) -> f64,
) -> Dense {
    Dense {
        weights: d.weights.mapv(&f),
        bias: d
            .bias
            .iter()
            .zip(v)
            .map(|(&b, &c)| combine(f(b), c))
            .collect(),
    }
}

/// Output `o` multiplied by `v[o]`.
fn scale_rows(d: &Dense, v: &[f64]) -> Dense {
    let mut weights = d.weights.clone();
    for (mut row, &c) in weights.rows_mut().into_iter().zip(v) {
        row *= c;
    }
    Dense {
        weights,
        bias: d.bias.iter().zip(v).map(|(b, c)| b * c).collect(),
    }
}
