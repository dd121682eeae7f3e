//! Reading the weights of a TFLite model: the flatbuffer parsed by hand (the
//! few tables of TFLite's `schema.fbs` the weights need, every offset
//! bounds-checked), the constant tensors dequantised to `f32` (`int8` and
//! `uint8` with their scales and zero points, per tensor or per channel) and
//! handed to the network through a `candle_nn::VarBuilder`, which checks each
//! tensor's shape when it is fetched.
//!
//! Tensors are served under the names TensorFlow gave them, with `/`
//! written `.` so that `VarBuilder::pp` walks the scopes, and a name fused
//! from several ops (`conv1d;PartitionedCall/conv1d1`) keeping its first
//! part. The weights of a convolution or dense layer are also served by
//! their role in the graph, because the converter renames and shares
//! tensors (two equal biases become one tensor, named after one of its
//! users; a weight gets digits when a zero bias took its name):
//! - `<layer>.kernel`: the weight input of a `CONV_2D`, `FULLY_CONNECTED` or
//!   `TRANSPOSE_CONV` op, `<layer>` being the name of what the op makes less
//!   the part that names the op (`encoder.layer_._0.attention.self.query`
//!   for `…/query/Tensordot/MatMul1`, `postnet.conv_._3` for
//!   `postnet/conv_._3/conv1d2`);
//! - `<layer>.bias`: the constant that the `ADD` after that op (through
//!   `SQUEEZE`, `RESHAPE` or `BATCH_TO_SPACE_ND`) adds.
//!
//! The zero biases the converter adds to `CONV_2D` (the real bias is the
//! separate `ADD`) are checked to be zero and not kept.
//!
//! ```no_run
//! use candle_core::Device;
//! use models::fastspeech2::tflite::Weights;
//!
//! let w = Weights::load("cache_hub/fastspeech2/zh_CN-baker/mb_melgan.tflite".as_ref(), &Device::Cpu)?;
//! let vb = w.var_builder(&Device::Cpu);
//! let first = vb.get((384, 1, 7, 80), "sequential_4.conv1d.conv1d")?;
//! assert_eq!(first.dims(), &[384, 1, 7, 80]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::Error;

/// TFLite's `TensorType` codes this reader dequantises.
const FLOAT32: u8 = 0;
const INT32: u8 = 2;
const UINT8: u8 = 3;
const INT8: u8 = 9;

/// TFLite's `BuiltinOperator` codes of the ops the weights are named by.
const ADD: i32 = 0;
const CONV_2D: i32 = 3;
const RESHAPE: i32 = 22;
const BATCH_TO_SPACE_ND: i32 = 37;
const SQUEEZE: i32 = 43;
const FULLY_CONNECTED: i32 = 9;
const TRANSPOSE_CONV: i32 = 67;
/// `DEPTHWISE_CONV_2D`, treated like `CONV_2D` for its zero bias.
const DEPTHWISE_CONV_2D: i32 = 4;
const QUANTIZE: i32 = 114;

/// A malformed file: what was wrong, for the caller to name the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Malformed(String);

type Parse<T> = std::result::Result<T, Malformed>;

fn bad<T>(what: impl Into<String>) -> Parse<T> {
    Err(Malformed(what.into()))
}

/// A flatbuffer table: its position and its vtable's.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

fn read<const N: usize>(buf: &[u8], pos: usize) -> Parse<[u8; N]> {
    pos.checked_add(N)
        .and_then(|end| buf.get(pos..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .map_or_else(
            || bad(format!("offset {pos} is past the end of the file")),
            Ok,
        )
}

fn u32_at(buf: &[u8], pos: usize) -> Parse<u32> {
    Ok(u32::from_le_bytes(read::<4>(buf, pos)?))
}

fn u16_at(buf: &[u8], pos: usize) -> Parse<u16> {
    Ok(u16::from_le_bytes(read::<2>(buf, pos)?))
}

/// The position an offset stored at `pos` points to.
fn follow(buf: &[u8], pos: usize) -> Parse<usize> {
    let off = u32_at(buf, pos)? as usize;
    pos.checked_add(off)
        .filter(|p| *p < buf.len())
        .map_or_else(|| bad(format!("offset at {pos} points past the file")), Ok)
}

impl<'a> Table<'a> {
    fn at(buf: &'a [u8], pos: usize) -> Parse<Self> {
        let soff = i32::from_le_bytes(read::<4>(buf, pos)?) as i64;
        let vtable = pos as i64 - soff;
        if vtable < 0 || vtable as usize >= buf.len() {
            return bad(format!("table at {pos} has its vtable outside the file"));
        }
        let vtable = vtable as usize;
        let vtable_len = u16_at(buf, vtable)? as usize;
        Ok(Self {
            buf,
            pos,
            vtable,
            vtable_len,
        })
    }

    /// Where field `i`'s value is, when present.
    fn field(&self, i: usize) -> Parse<Option<usize>> {
        let entry = 4 + 2 * i;
        if entry + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = u16_at(self.buf, self.vtable + entry)? as usize;
        Ok((off != 0).then_some(self.pos + off))
    }

    fn u8(&self, i: usize, default: u8) -> Parse<u8> {
        match self.field(i)? {
            Some(p) => Ok(read::<1>(self.buf, p)?[0]),
            None => Ok(default),
        }
    }

    fn u32(&self, i: usize, default: u32) -> Parse<u32> {
        match self.field(i)? {
            Some(p) => u32_at(self.buf, p),
            None => Ok(default),
        }
    }

    fn i32(&self, i: usize, default: i32) -> Parse<i32> {
        Ok(self.u32(i, default as u32)? as i32)
    }

    fn table(&self, i: usize) -> Parse<Option<Table<'a>>> {
        match self.field(i)? {
            Some(p) => Ok(Some(Table::at(self.buf, follow(self.buf, p)?)?)),
            None => Ok(None),
        }
    }

    fn vector(&self, i: usize) -> Parse<Option<Vector<'a>>> {
        match self.field(i)? {
            Some(p) => {
                let start = follow(self.buf, p)?;
                let len = u32_at(self.buf, start)? as usize;
                Ok(Some(Vector {
                    buf: self.buf,
                    start: start + 4,
                    len,
                }))
            }
            None => Ok(None),
        }
    }

    fn string(&self, i: usize) -> Parse<String> {
        match self.vector(i)? {
            Some(v) => Ok(String::from_utf8_lossy(v.bytes(1)?).into_owned()),
            None => Ok(String::new()),
        }
    }
}

/// A flatbuffer vector: `len` elements from `start`.
#[derive(Clone, Copy)]
struct Vector<'a> {
    buf: &'a [u8],
    start: usize,
    len: usize,
}

impl<'a> Vector<'a> {
    /// The elements' bytes, `size` bytes each.
    fn bytes(&self, size: usize) -> Parse<&'a [u8]> {
        let end = self
            .len
            .checked_mul(size)
            .and_then(|n| n.checked_add(self.start));
        match end.and_then(|e| self.buf.get(self.start..e)) {
            Some(s) => Ok(s),
            None => bad(format!(
                "a vector of {} elements at {} runs past the file",
                self.len, self.start
            )),
        }
    }

    fn i32s(&self) -> Parse<Vec<i32>> {
        Ok(self
            .bytes(4)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn f32s(&self) -> Parse<Vec<f32>> {
        Ok(self
            .bytes(4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn i64s(&self) -> Parse<Vec<i64>> {
        Ok(self
            .bytes(8)?
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    fn table(&self, i: usize) -> Parse<Table<'a>> {
        if i >= self.len {
            return bad(format!("element {i} of a vector of {}", self.len));
        }
        Table::at(self.buf, follow(self.buf, self.start + 4 * i)?)
    }
}

/// How a tensor's integers map to reals: `(q - zero_point) · scale`, per
/// tensor (one scale) or per channel along `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    /// One scale, or one per channel.
    pub scale: Vec<f32>,
    /// As many zero points as scales (or none: zero).
    pub zero_point: Vec<i64>,
    /// The channel axis of per-channel scales.
    pub dim: usize,
}

/// One tensor of the graph.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// TensorFlow's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// TFLite's `TensorType` code.
    pub dtype: u8,
    /// The index of its buffer (0: no data, a run-time tensor).
    pub buffer: usize,
    /// Its quantisation, when it has one.
    pub quantization: Option<Quantization>,
}

/// One operator of the graph.
#[derive(Debug, Clone)]
pub struct Operator {
    /// TFLite's `BuiltinOperator` code.
    pub code: i32,
    /// Input tensor indices (-1: an optional input left out).
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
}

/// A TFLite model's first subgraph: its tensors, operators and buffers.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every tensor.
    pub tensors: Vec<TensorInfo>,
    /// Every operator, in execution order.
    pub operators: Vec<Operator>,
    /// Where each buffer's bytes are in the file (`start..end`; empty for none).
    buffers: Vec<std::ops::Range<usize>>,
}

impl Graph {
    /// Parses a TFLite flatbuffer.
    fn parse(buf: &[u8]) -> Parse<Self> {
        if buf.len() < 8 {
            return bad("the file is too short to be a flatbuffer");
        }
        if &buf[4..8] != b"TFL3" {
            return bad("the file has no TFLite identifier (TFL3)");
        }
        let model = Table::at(buf, follow(buf, 0)?)?;
        let Some(subgraphs) = model.vector(2)? else {
            return bad("the model has no subgraph");
        };
        let sub = subgraphs.table(0)?;
        let mut codes = Vec::new();
        if let Some(v) = model.vector(1)? {
            for i in 0..v.len {
                let t = v.table(i)?;
                // `deprecated_builtin_code` (a byte) holds codes below 127;
                // `builtin_code` (field 3) the others.
                let old = t.u8(0, 0)? as i8 as i32;
                let new = t.i32(3, 0)?;
                codes.push(new.max(old));
            }
        }
        let mut buffers = Vec::new();
        if let Some(v) = model.vector(4)? {
            for i in 0..v.len {
                let t = v.table(i)?;
                let range = match t.vector(0)? {
                    Some(d) => {
                        let bytes = d.bytes(1)?;
                        d.start..d.start + bytes.len()
                    }
                    None => {
                        // Buffers of models over 2 GB live after the
                        // flatbuffer, at `offset` for `size` bytes.
                        let off = t.field(1)?.map(|p| read::<8>(buf, p)).transpose()?;
                        let size = t.field(2)?.map(|p| read::<8>(buf, p)).transpose()?;
                        match (off, size) {
                            (Some(o), Some(s)) if u64::from_le_bytes(s) > 0 => {
                                let o = u64::from_le_bytes(o) as usize;
                                let s = u64::from_le_bytes(s) as usize;
                                if o.checked_add(s).is_none_or(|e| e > buf.len()) {
                                    return bad(format!("buffer {i} lies past the file"));
                                }
                                o..o + s
                            }
                            _ => 0..0,
                        }
                    }
                };
                buffers.push(range);
            }
        }
        let mut tensors = Vec::new();
        if let Some(v) = sub.vector(0)? {
            for i in 0..v.len {
                let t = v.table(i)?;
                let shape = match t.vector(0)? {
                    Some(s) => s.i32s()?,
                    None => Vec::new(),
                };
                if shape.iter().any(|d| *d < 0) {
                    return bad(format!("tensor {i} has a negative dimension"));
                }
                let quantization = match t.table(4)? {
                    Some(q) => {
                        let scale = q.vector(2)?.map(|v| v.f32s()).transpose()?;
                        let zero_point = q.vector(3)?.map(|v| v.i64s()).transpose()?;
                        match scale {
                            Some(scale) if !scale.is_empty() => Some(Quantization {
                                scale,
                                zero_point: zero_point.unwrap_or_default(),
                                dim: q.i32(6, 0)?.max(0) as usize,
                            }),
                            _ => None,
                        }
                    }
                    None => None,
                };
                tensors.push(TensorInfo {
                    name: t.string(3)?,
                    shape: shape.into_iter().map(|d| d as usize).collect(),
                    dtype: t.u8(1, FLOAT32)?,
                    buffer: t.u32(2, 0)? as usize,
                    quantization,
                });
            }
        }
        let mut operators = Vec::new();
        if let Some(v) = sub.vector(3)? {
            for i in 0..v.len {
                let t = v.table(i)?;
                let index = t.u32(0, 0)? as usize;
                let Some(&code) = codes.get(index) else {
                    return bad(format!(
                        "operator {i} names opcode {index}, which is not there"
                    ));
                };
                operators.push(Operator {
                    code,
                    inputs: t
                        .vector(1)?
                        .map(|v| v.i32s())
                        .transpose()?
                        .unwrap_or_default(),
                    outputs: t
                        .vector(2)?
                        .map(|v| v.i32s())
                        .transpose()?
                        .unwrap_or_default(),
                });
            }
        }
        Ok(Self {
            tensors,
            operators,
            buffers,
        })
    }

    /// The bytes of tensor `i`'s buffer (`None` for a run-time tensor).
    fn data<'b>(&self, buf: &'b [u8], i: usize) -> Option<&'b [u8]> {
        let t = self.tensors.get(i)?;
        let r = self.buffers.get(t.buffer)?.clone();
        (t.buffer != 0 && !r.is_empty()).then(|| &buf[r])
    }

    /// The value of tensor `i` as `f32`, dequantised (`None` for a run-time
    /// tensor or one of a type that is not numeric weights).
    fn dequantised(&self, buf: &[u8], i: usize) -> Parse<Option<Vec<f32>>> {
        let (Some(t), Some(bytes)) = (self.tensors.get(i), self.data(buf, i)) else {
            return Ok(None);
        };
        let n: usize = t.shape.iter().product();
        let raw: Vec<f32> = match t.dtype {
            FLOAT32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            INT8 => bytes.iter().map(|b| f32::from(*b as i8)).collect(),
            UINT8 => bytes.iter().map(|b| f32::from(*b)).collect(),
            INT32 => return Ok(None),
            _ => return Ok(None),
        };
        if raw.len() != n {
            return bad(format!(
                "tensor {} holds {} values for a shape of {n}",
                t.name,
                raw.len()
            ));
        }
        let Some(q) = &t.quantization else {
            return Ok(Some(raw));
        };
        if t.dtype == FLOAT32 {
            return Ok(Some(raw));
        }
        let channels = if q.scale.len() == 1 {
            1
        } else {
            match t.shape.get(q.dim) {
                Some(&c) if c == q.scale.len() => c,
                _ => {
                    return bad(format!(
                        "tensor {} has {} scales for its axis {}",
                        t.name,
                        q.scale.len(),
                        q.dim
                    ))
                }
            }
        };
        // Elements between consecutive channels of the quantised axis.
        let inner: usize = t.shape.iter().skip(q.dim + 1).product();
        let out = raw
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let c = if channels == 1 {
                    0
                } else {
                    (k / inner.max(1)) % channels
                };
                let zp = q.zero_point.get(c).copied().unwrap_or(0) as f32;
                (v - zp) * q.scale[c]
            })
            .collect();
        Ok(Some(out))
    }
}

/// The name under which a tensor is served: the first part of a fused
/// name, `/` as `.`.
fn served_name(name: &str) -> String {
    name.split(';').next().unwrap_or(name).replace('/', ".")
}

/// The layer a weight tensor belongs to: its served name less the part
/// that names the op (`…query.Tensordot.MatMul` → `…query`,
/// `postnet.conv_._3.conv1d1` → `postnet.conv_._3`), or the whole name
/// when nothing is left.
fn layer_name(weight: &str) -> String {
    let served = served_name(weight);
    let mut parts: Vec<&str> = served.split('.').collect();
    let op = |p: &str| {
        let stem = p.trim_end_matches(|c: char| c.is_ascii_digit());
        matches!(
            stem,
            "conv1d" | "MatMul" | "conv2d_transpose" | "conv1d_transpose"
        )
    };
    if parts.len() > 1 && parts.last().is_some_and(|p| op(p)) {
        parts.pop();
        if parts.len() > 1 && parts.last() == Some(&"Tensordot") {
            parts.pop();
        }
    }
    parts.join(".")
}

/// The constant tensors of a TFLite model as `f32` candle tensors, by name
/// (see the [module](self) documentation), with the graph they came from.
pub struct Weights {
    map: HashMap<String, Tensor>,
    graph: Graph,
    path: String,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("path", &self.path)
            .field("tensors", &self.map.len())
            .finish()
    }
}

impl Weights {
    /// Reads and dequantises every constant tensor of `path` onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string(), device)
    }

    /// [`Self::load`] from the file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: &[u8], path: &str, device: &Device) -> Result<Self, Error> {
        let not_tflite = |e: Malformed| Error::NotTflite {
            path: path.to_owned(),
            reason: e.0,
        };
        let graph = Graph::parse(bytes).map_err(not_tflite)?;
        let n = graph.tensors.len();
        let index = |i: i32| usize::try_from(i).ok().filter(|i| *i < n);
        // Which op makes each tensor.
        let mut producer = vec![None; n];
        for (k, op) in graph.operators.iter().enumerate() {
            for &o in &op.outputs {
                if let Some(o) = index(o) {
                    producer[o] = Some(k);
                }
            }
        }
        // The weight of each layer op, by op; the zero biases of CONV_2D.
        let mut layer_of_op: Vec<Option<String>> = vec![None; graph.operators.len()];
        let mut kernels: Vec<(usize, String)> = Vec::new();
        let mut zero_bias = vec![false; n];
        for (k, op) in graph.operators.iter().enumerate() {
            let weight = match op.code {
                // TRANSPOSE_CONV: (output shape, weights, input[, bias]).
                CONV_2D | DEPTHWISE_CONV_2D | FULLY_CONNECTED | TRANSPOSE_CONV => {
                    op.inputs.get(1).copied().and_then(index)
                }
                _ => None,
            };
            if let Some(w) = weight.filter(|w| graph.data(bytes, *w).is_some()) {
                // Named by what the op makes (unique), not by its weight,
                // which the converter may share between equal layers.
                let made = op.outputs.first().copied().and_then(index).unwrap_or(w);
                let layer = layer_name(&graph.tensors[made].name);
                kernels.push((w, format!("{layer}.kernel")));
                layer_of_op[k] = Some(layer);
            }
            if matches!(op.code, CONV_2D | DEPTHWISE_CONV_2D) {
                if let Some(b) = op.inputs.get(2).copied().and_then(index) {
                    zero_bias[b] = true;
                }
            }
        }
        // The bias each layer's ADD adds.
        let mut biases: Vec<(usize, String)> = Vec::new();
        for op in graph.operators.iter().filter(|op| op.code == ADD) {
            let ins: Vec<usize> = op.inputs.iter().copied().filter_map(index).collect();
            let [a, b] = ins[..] else { continue };
            let (konst, flow) = match (
                graph.data(bytes, a).is_some(),
                graph.data(bytes, b).is_some(),
            ) {
                (true, false) => (a, b),
                (false, true) => (b, a),
                _ => continue,
            };
            if graph.tensors[konst].shape.len() != 1 {
                continue;
            }
            // Back through the shape ops to the layer.
            let mut t = flow;
            let mut layer = None;
            for _ in 0..4 {
                let Some(k) = producer[t] else { break };
                if let Some(l) = &layer_of_op[k] {
                    layer = Some(l.clone());
                    break;
                }
                let through = &graph.operators[k];
                if !matches!(through.code, SQUEEZE | RESHAPE | BATCH_TO_SPACE_ND) {
                    break;
                }
                match through.inputs.first().copied().and_then(index) {
                    Some(i) => t = i,
                    None => break,
                }
            }
            if let Some(layer) = layer {
                biases.push((konst, format!("{layer}.bias")));
            }
        }
        let mut values: Vec<Option<Tensor>> = vec![None; n];
        let mut map = HashMap::new();
        for (i, t) in graph.tensors.iter().enumerate() {
            let Some(v) = graph.dequantised(bytes, i).map_err(not_tflite)? else {
                continue;
            };
            if zero_bias[i] && !kernels.iter().any(|(k, _)| *k == i) {
                if v.iter().any(|x| *x != 0.0) {
                    return Err(not_tflite(Malformed(format!(
                        "the convolution bias {} is not zero, which this reader does not expect",
                        t.name
                    ))));
                }
                continue;
            }
            let tensor = Tensor::from_vec(v, t.shape.as_slice(), device)?;
            values[i] = Some(tensor.clone());
            let name = served_name(&t.name);
            if map.insert(name.clone(), tensor).is_some() {
                return Err(not_tflite(Malformed(format!(
                    "two constant tensors are served as {name}"
                ))));
            }
        }
        for (i, name) in kernels.into_iter().chain(biases) {
            let Some(tensor) = values[i].clone() else {
                continue;
            };
            if map.insert(name.clone(), tensor).is_some() {
                return Err(not_tflite(Malformed(format!(
                    "two layers are served as {name}"
                ))));
            }
        }
        Ok(Self {
            map,
            graph,
            path: path.to_owned(),
        })
    }

    /// A `VarBuilder` over the tensors (f32, on `device`). A tensor fetched
    /// with a shape other than its own, or one that is missing, is an error
    /// naming it.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.map.clone(), DType::F32, device)
    }

    /// The file the weights came from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The graph the weights came from (to read settings the shapes do not
    /// hold, such as a quantised activation's scale).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Every served name and its shape, sorted.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<(String, Vec<usize>)> = self
            .map
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        v.sort();
        v
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A copy without the tensor `name` (to test what a damaged file does).
    pub fn without(&self, name: &str) -> Self {
        let mut map = self.map.clone();
        map.remove(name);
        Self {
            map,
            graph: self.graph.clone(),
            path: self.path.clone(),
        }
    }

    /// A copy with the tensor `name` replaced (to test what a damaged file
    /// does).
    pub fn with(&self, name: &str, tensor: Tensor) -> Self {
        let mut map = self.map.clone();
        map.insert(name.to_owned(), tensor);
        Self {
            map,
            graph: self.graph.clone(),
            path: self.path.clone(),
        }
    }
}

impl Graph {
    /// The quantisation of the output of the graph's last `QUANTIZE` op
    /// (an activation the exported model rounds to 8 bits, such as
    /// MB-MelGAN's output before its filter bank), if it has one.
    pub fn quantized_activation(&self) -> Option<&Quantization> {
        self.operators
            .iter()
            .rev()
            .filter(|op| op.code == QUANTIZE)
            .find_map(|op| {
                let out = *op.outputs.first()?;
                self.tensors
                    .get(usize::try_from(out).ok()?)?
                    .quantization
                    .as_ref()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny flatbuffer writer for the tests. Like flatbuffers' own
    /// builder it writes back to front, so that every offset points
    /// forward; objects are known by their distance from the end.
    struct Builder {
        /// The end of the buffer, written so far.
        data: Vec<u8>,
    }

    #[derive(Clone, Copy)]
    enum Field {
        U32(u32),
        U8(u8),
        /// An object written before (its distance from the end).
        Ref(usize),
    }

    impl Builder {
        fn new() -> Self {
            Self { data: Vec::new() }
        }
        fn prepend(&mut self, bytes: &[u8]) -> usize {
            self.data.splice(0..0, bytes.iter().copied());
            self.data.len()
        }
        /// A vector of `n` elements of raw little-endian bytes.
        fn vector(&mut self, n: usize, bytes: &[u8]) -> usize {
            let mut v = (n as u32).to_le_bytes().to_vec();
            v.extend_from_slice(bytes);
            self.prepend(&v)
        }
        fn string(&mut self, s: &str) -> usize {
            let mut bytes = s.as_bytes().to_vec();
            bytes.push(0);
            let mut v = (s.len() as u32).to_le_bytes().to_vec();
            v.extend_from_slice(&bytes);
            self.prepend(&v)
        }
        /// A table with fields in the given slots, its vtable right before it.
        fn table(&mut self, fields: &[(usize, Field)]) -> usize {
            let slots = fields.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
            let body_len = 4 + 4 * fields.len();
            let vt_len = 4 + 2 * slots;
            // Where the body will start, as a distance from the end.
            let d = self.data.len() + body_len;
            let mut body = (vt_len as i32).to_le_bytes().to_vec();
            let mut offs = vec![0u16; slots];
            for (k, (slot, f)) in fields.iter().enumerate() {
                offs[*slot] = (4 + 4 * k) as u16;
                let field_dist = d - 4 - 4 * k;
                match f {
                    Field::U32(v) => body.extend_from_slice(&v.to_le_bytes()),
                    Field::U8(v) => body.extend_from_slice(&[*v, 0, 0, 0]),
                    Field::Ref(t) => {
                        body.extend_from_slice(&((field_dist - t) as u32).to_le_bytes())
                    }
                }
            }
            let table = self.prepend(&body);
            let mut vt = (vt_len as u16).to_le_bytes().to_vec();
            vt.extend_from_slice(&(body_len as u16).to_le_bytes());
            for o in offs {
                vt.extend_from_slice(&o.to_le_bytes());
            }
            self.prepend(&vt);
            table
        }
        /// A vector of offsets to tables written before.
        fn tables(&mut self, items: &[usize]) -> usize {
            let d = self.data.len() + 4 + 4 * items.len();
            let mut v = (items.len() as u32).to_le_bytes().to_vec();
            for (k, t) in items.iter().enumerate() {
                let at = d - 4 - 4 * k;
                v.extend_from_slice(&((at - t) as u32).to_le_bytes());
            }
            self.prepend(&v)
        }
        /// The root offset and the TFLite identifier in front.
        fn finish(mut self, root: usize) -> Vec<u8> {
            let total = self.data.len() + 8;
            let mut head = ((total - root) as u32).to_le_bytes().to_vec();
            head.extend_from_slice(b"TFL3");
            self.prepend(&head);
            self.data
        }
    }

    /// A model with one int8 dense weight (scale 0.5, zero point 1) and
    /// its bias added by an ADD, and a convolution whose zero bias took the
    /// name of its weight.
    fn model(fc_values: &[i8]) -> Vec<u8> {
        let mut b = Builder::new();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i32s = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // Buffers: 0 empty, 1 fc weight, 2 bias, 3 zero bias, 4 conv weight.
        let fc: Vec<u8> = fc_values.iter().map(|v| *v as u8).collect();
        let datas = [
            None,
            Some(b.vector(fc.len(), &fc)),
            Some(b.vector(8, &f32s(&[1.5, -2.0]))),
            Some(b.vector(8, &f32s(&[0.0, 0.0]))),
            Some(b.vector(8, &f32s(&[3.0, 4.0]))),
        ];
        let buffers: Vec<usize> = datas
            .iter()
            .map(|d| match d {
                Some(p) => b.table(&[(0, Field::Ref(*p))]),
                None => b.table(&[]),
            })
            .collect();
        let scale = b.vector(1, &0.5f32.to_le_bytes());
        let zp = b.vector(1, &1i64.to_le_bytes());
        let quant = b.table(&[(2, Field::Ref(scale)), (3, Field::Ref(zp))]);
        let tensor = |b: &mut Builder, name: &str, shape: &[i32], ty: u8, buf: u32, q: bool| {
            let n = b.string(name);
            let s = b.vector(shape.len(), &i32s(shape));
            let mut f = vec![
                (0, Field::Ref(s)),
                (1, Field::U8(ty)),
                (2, Field::U32(buf)),
                (3, Field::Ref(n)),
            ];
            if q {
                f.push((4, Field::Ref(quant)));
            }
            b.table(&f)
        };
        let tensors = [
            tensor(&mut b, "x", &[1, 2], FLOAT32, 0, false),
            tensor(&mut b, "dense/Tensordot/MatMul", &[2, 2], INT8, 1, true),
            tensor(
                &mut b,
                "dense/BiasAdd/ReadVariableOp/resource",
                &[2],
                FLOAT32,
                2,
                false,
            ),
            tensor(&mut b, "conv/conv1d", &[2], FLOAT32, 3, false),
            tensor(&mut b, "conv/conv1d1", &[2, 1, 1, 1], FLOAT32, 4, false),
            tensor(
                &mut b,
                "dense/Tensordot/MatMul1",
                &[1, 2],
                FLOAT32,
                0,
                false,
            ),
            tensor(&mut b, "conv/conv1d2", &[1, 2], FLOAT32, 0, false),
            tensor(&mut b, "dense/BiasAdd", &[1, 2], FLOAT32, 0, false),
        ];
        let op = |b: &mut Builder, code: u32, ins: &[i32], outs: &[i32]| {
            let i = b.vector(ins.len(), &i32s(ins));
            let o = b.vector(outs.len(), &i32s(outs));
            b.table(&[
                (0, Field::U32(code)),
                (1, Field::Ref(i)),
                (2, Field::Ref(o)),
            ])
        };
        let ops = [
            op(&mut b, 0, &[0, 1, -1], &[5]),
            op(&mut b, 1, &[0, 4, 3], &[6]),
            op(&mut b, 2, &[5, 2], &[7]),
        ];
        let codes = [
            b.table(&[(3, Field::U32(FULLY_CONNECTED as u32))]),
            b.table(&[(0, Field::U8(CONV_2D as u8))]),
            b.table(&[(0, Field::U8(ADD as u8))]),
        ];
        let tensors = b.tables(&tensors);
        let ops = b.tables(&ops);
        let sub = b.table(&[(0, Field::Ref(tensors)), (3, Field::Ref(ops))]);
        let subs = b.tables(&[sub]);
        let codes = b.tables(&codes);
        let buffers = b.tables(&buffers);
        let root = b.table(&[
            (0, Field::U32(3)),
            (1, Field::Ref(codes)),
            (2, Field::Ref(subs)),
            (4, Field::Ref(buffers)),
        ]);
        b.finish(root)
    }

    #[test]
    fn weights_are_dequantised_named_by_their_layer_and_shape_checked() {
        let bytes = model(&[3, -1, 1, 127]);
        let w = Weights::from_bytes(&bytes, "test.tflite", &Device::Cpu).unwrap();
        let names: Vec<String> = w.shapes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            vec![
                "conv.conv1d1",
                "conv.kernel",
                "dense.BiasAdd.ReadVariableOp.resource",
                "dense.Tensordot.MatMul",
                "dense.bias",
                "dense.kernel",
            ]
        );
        let vb = w.var_builder(&Device::Cpu);
        let fc: Vec<f32> = vb
            .get((2, 2), "dense.kernel")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // (q - 1) · 0.5
        assert_eq!(fc, vec![1.0, -1.0, 0.0, 63.0]);
        let bias: Vec<f32> = vb.get(2, "dense.bias").unwrap().to_vec1().unwrap();
        assert_eq!(bias, vec![1.5, -2.0]);
        let conv: Vec<f32> = vb
            .get((2, 1, 1, 1), "conv.kernel")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(conv, vec![3.0, 4.0]);
        let err = vb.get((2, 1), "conv.kernel").unwrap_err().to_string();
        assert!(err.contains("conv.kernel"), "{err}");
        let err = vb.get(2, "missing.kernel").unwrap_err().to_string();
        assert!(err.contains("missing.kernel"), "{err}");
    }

    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let good = model(&[0, 0, 0, 0]);
        for (cut, what) in [(4, "too short"), (good.len() / 2, "past")] {
            let err = Weights::from_bytes(&good[..cut], "cut.tflite", &Device::Cpu)
                .unwrap_err()
                .to_string();
            assert!(err.contains("cut.tflite"), "{err}");
            assert!(err.contains(what), "{what}: {err}");
        }
        let mut other = good.clone();
        other[4..8].copy_from_slice(b"ONNX");
        let err = Weights::from_bytes(&other, "x.onnx", &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TFL3"), "{err}");
        // Every truncation fails cleanly, never panics.
        for cut in 0..good.len() {
            let _ = Weights::from_bytes(&good[..cut], "cut.tflite", &Device::Cpu);
        }
    }

    #[test]
    fn layers_are_named_by_what_their_op_makes() {
        assert_eq!(layer_name("conv1d;PartitionedCall/conv1d2"), "conv1d");
        assert_eq!(layer_name("a/conv1d_1/conv1d1"), "a.conv1d_1");
        assert_eq!(layer_name("postnet/conv_._3/conv1d2"), "postnet.conv_._3");
        assert_eq!(layer_name("m/query/Tensordot/MatMul1"), "m.query");
        assert_eq!(
            layer_name("s/conv_transpose_._0/conv2d_transpose/conv2d_transpose1"),
            "s.conv_transpose_._0.conv2d_transpose"
        );
        assert_eq!(served_name("a/b;c/d"), "a.b");
    }
}
