//! Reading ONNX tensors and node attributes into plain Rust values, with the checks the
//! ONNX spec implies (element count = product of dims, little-endian `raw_data`).

use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};

use crate::error::{Error, Result};

/// A constant tensor: its dims and values (floats widened to f64, integers as i64).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    pub dims: Vec<usize>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

impl Tensor {
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }

    pub fn floats(&self) -> Vec<f64> {
        match &self.values {
            Values::Float(v) => v.clone(),
            Values::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Int(v) => Some(v),
            Values::Float(_) => None,
        }
    }
}

// TensorProto.DataType values (onnx.proto).
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// Decodes a tensor (an initializer or a `Constant`'s value).
pub(crate) fn tensor(t: &TensorProto) -> Result<Tensor> {
    let bad = |m: String| Error::ModelFile(format!("tensor {:?}: {m}", t.name));
    if !t.external_data.is_empty() {
        return Err(bad(
            "its data is in an external file; save the model with its weights inside".into(),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("its size overflows".into()))?;
    let raw = &t.raw_data;
    let chunks = |width: usize| -> Result<Vec<[u8; 8]>> {
        if raw.len() != count * width {
            return Err(bad(format!(
                "{} bytes of raw data for {count} values of {width} bytes",
                raw.len()
            )));
        }
        Ok(raw
            .chunks_exact(width)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(c);
                b
            })
            .collect())
    };
    let values = match t.data_type {
        FLOAT if !raw.is_empty() => Values::Float(
            chunks(4)?
                .into_iter()
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
        ),
        FLOAT => Values::Float(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        DOUBLE if !raw.is_empty() => {
            Values::Float(chunks(8)?.into_iter().map(f64::from_le_bytes).collect())
        }
        DOUBLE => Values::Float(t.double_data.clone()),
        INT64 if !raw.is_empty() => {
            Values::Int(chunks(8)?.into_iter().map(i64::from_le_bytes).collect())
        }
        INT64 => Values::Int(t.int64_data.clone()),
        INT32 if !raw.is_empty() => Values::Int(
            chunks(4)?
                .into_iter()
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
        ),
        INT32 => Values::Int(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        other => {
            return Err(bad(format!(
                "element type {other} (supported: float, double, int32, int64)"
            )))
        }
    };
    let tensor = Tensor { dims, values };
    if tensor.len() != count {
        return Err(bad(format!(
            "{} values for dims {:?}",
            tensor.len(),
            tensor.dims
        )));
    }
    Ok(tensor)
}

/// A node's attributes, read by name.
pub(crate) struct Attributes<'a> {
    node: &'a NodeProto,
}

impl<'a> Attributes<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Self { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    pub fn floats(&self, name: &str) -> Vec<f32> {
        self.get(name).map_or_else(Vec::new, |a| a.floats.clone())
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map_or_else(Vec::new, |a| a.ints.clone())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map_or_else(Vec::new, |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }

    /// Attribute names present that are not in `known`.
    pub fn unknown(&self, known: &[&str]) -> Vec<String> {
        self.node
            .attribute
            .iter()
            .filter(|a| !known.contains(&a.name.as_str()))
            .map(|a| a.name.clone())
            .collect()
    }
}
