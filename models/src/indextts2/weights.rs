//! Reading the official checkpoint files into a [`VarBuilder`], and the small
//! layers the blocks share (convolutions with weight norm, batch norm, ...).
//!
//! Files: PyTorch `.pth`/`.pt`/`.bin` zip archives (candle's pickle reader;
//! nested dictionaries such as s2mel's `{"net": {"cfm": {...}}}` or BigVGAN's
//! `{"generator": {...}}` are flattened with `.`, so `vb.pp("net").pp("cfm")`
//! or `vb.pp("generator")` reach them) and `.safetensors` files. Every weight
//! is fetched with its expected shape, so a wrong tensor fails at load naming
//! it and the shape that was expected.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::{Error, Result};

/// All tensors of a PyTorch zip checkpoint, nested dictionaries flattened with
/// `.` (`{"net": {"cfm": {"a.b": t}}}` gives `net.cfm.a.b`). Entries that are
/// not tensors (numbers, strings, optimiser state) are skipped.
pub fn read_pth(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let shown = path.display().to_string();
    let format = |reason: String| Error::Format {
        path: shown.clone(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: shown.clone(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format(format!("not a PyTorch zip archive: {e}")))?;
    let pkl = zip
        .file_names()
        .find(|f| f.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| format("no data.pkl in the archive".into()))?;
    let dir = Path::new(pkl.strip_suffix(".pkl").unwrap_or(&pkl)).to_path_buf();
    let object = {
        let entry = zip
            .by_name(&pkl)
            .map_err(|e| format(format!("{pkl}: {e}")))?;
        let mut reader = std::io::BufReader::new(entry);
        let mut stack = Stack::empty();
        stack.read_loop(&mut reader)?;
        stack.finalize()?
    };
    let mut infos = Vec::new();
    flatten(object, String::new(), &dir, &mut infos)?;
    let mut out = HashMap::with_capacity(infos.len());
    for info in infos {
        let mut entry = zip
            .by_name(&info.path)
            .map_err(|e| format(format!("{}: {e}", info.path)))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|source| Error::Io {
            path: format!("{shown}:{}", info.path),
            source,
        })?;
        out.insert(
            info.name.clone(),
            tensor_from_storage(&info, &bytes, device)?,
        );
    }
    Ok(out)
}

/// Walks dictionaries (plain or ordered) and collects the tensors' infos.
fn flatten(
    object: Object,
    prefix: String,
    dir: &Path,
    out: &mut Vec<candle_core::pickle::TensorInfo>,
) -> Result<()> {
    match object {
        Object::Dict(entries) => {
            for (key, value) in entries {
                let key = match key {
                    Object::Unicode(k) => k,
                    Object::Int(i) => i.to_string(),
                    _ => continue,
                };
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(value, name, dir, out)?;
            }
        }
        other => {
            // `into_tensor_info` answers `None` for anything that is not a tensor.
            if let Ok(Some(info)) = other.into_tensor_info(Object::Unicode(prefix), dir) {
                out.push(info);
            }
        }
    }
    Ok(())
}

/// A tensor from the bytes of its storage in the archive.
fn tensor_from_storage(
    info: &candle_core::pickle::TensorInfo,
    storage: &[u8],
    device: &Device,
) -> Result<Tensor> {
    let layout = &info.layout;
    let dims = layout.shape().dims().to_vec();
    let rank = dims.len();
    let fortran = layout.is_fortran_contiguous();
    if !layout.is_contiguous() && !fortran {
        return Err(Error::Format {
            path: info.path.clone(),
            reason: format!("tensor {} is strided ({layout:?})", info.name),
        });
    }
    let start = layout.start_offset(); // bytes
    let len = layout.shape().elem_count() * info.dtype.size_in_bytes();
    let bytes = storage
        .get(start..start + len)
        .ok_or_else(|| Error::Format {
            path: info.path.clone(),
            reason: format!("tensor {} runs past its storage", info.name),
        })?;
    if rank > 1 && fortran && !layout.is_contiguous() {
        let reversed: Vec<usize> = dims.iter().rev().copied().collect();
        let t = Tensor::from_raw_buffer(bytes, info.dtype, &reversed, device)?;
        let order: Vec<usize> = (0..rank).rev().collect();
        return Ok(t.permute(order)?.contiguous()?);
    }
    Ok(Tensor::from_raw_buffer(bytes, info.dtype, &dims, device)?)
}

/// A [`VarBuilder`] (f32) over a `.pth`/`.pt`/`.bin` checkpoint, its names
/// unwrapped as the reference's loaders accept them ([`unwrap_names`]).
pub fn pth_var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors = unwrap_names(read_pth(path, device)?);
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// The wrappings the reference's loaders take off: a state dict saved as
/// `{"model": sd}` (UnifiedVoice's `load_checkpoint`), and the `module.`
/// prefix of a model trained under DistributedDataParallel, at the start of
/// a name or after s2mel's module key (`net.cfm.module.estimator…`, as
/// `load_checkpoint2` strips it). Other names are kept.
///
/// ```
/// use std::collections::HashMap;
/// use candle_core::{Device, Tensor};
/// let t = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?;
/// let wrapped = HashMap::from([
///     ("model.mel_head.bias".to_string(), t.clone()),
///     ("model.final_norm.weight".to_string(), t.clone()),
/// ]);
/// let names = models::indextts2::weights::unwrap_names(wrapped);
/// assert!(names.contains_key("mel_head.bias"));
/// let ddp = HashMap::from([("net.cfm.module.estimator.x".to_string(), t)]);
/// assert!(models::indextts2::weights::unwrap_names(ddp).contains_key("net.cfm.estimator.x"));
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn unwrap_names(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let all_model = !tensors.is_empty() && tensors.keys().all(|k| k.starts_with("model."));
    tensors
        .into_iter()
        .map(|(k, v)| {
            let mut k = if all_model {
                k["model.".len()..].to_string()
            } else {
                k
            };
            if let Some(rest) = k.strip_prefix("module.") {
                k = rest.to_string();
            }
            let parts: Vec<&str> = k.splitn(4, '.').collect();
            if parts.len() == 4 && parts[0] == "net" && parts[2] == "module" {
                k = format!("net.{}.{}", parts[1], parts[3]);
            }
            (k, v)
        })
        .collect()
}

/// A [`VarBuilder`] (f32) over a `.safetensors` file (read into memory).
pub fn safetensors_var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| Error::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// A weight that may be stored with weight norm: `weight` as is, or
/// `weight_g * weight_v / ||weight_v||` (the norm over every dimension but the
/// first, as `torch.nn.utils.weight_norm(dim=0)`), which is what the reference
/// computes when it removes weight norm after loading.
pub fn weight_maybe_norm(vb: &VarBuilder, shape: &[usize]) -> Result<Tensor> {
    if vb.contains_tensor("weight_g") {
        let mut g_shape = vec![1usize; shape.len()];
        g_shape[0] = shape[0];
        let g = vb.get(g_shape, "weight_g")?;
        let v = vb.get(shape, "weight_v")?;
        let flat = v.flatten_from(1)?;
        let norm = flat.sqr()?.sum_keepdim(1)?.sqrt()?;
        let w = flat.broadcast_div(&norm)?.reshape(shape)?;
        Ok(w.broadcast_mul(&g)?)
    } else {
        Ok(vb.get(shape, "weight")?)
    }
}

/// A 1-D convolution (`[batch, channels, time]`) with its settings.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    stride: usize,
    dilation: usize,
    groups: usize,
}

/// The settings of a [`Conv1d`] besides its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Zero padding on both sides.
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
    /// Whether the reference wraps it in weight norm (then `weight_g` and
    /// `weight_v` are read when present, else a folded `weight`).
    pub weight_norm: bool,
}

impl Conv1dSpec {
    /// Stride 1, no padding or dilation, one group, with a bias.
    pub fn new(cin: usize, cout: usize, kernel: usize) -> Self {
        Self {
            cin,
            cout,
            kernel,
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
            bias: true,
            weight_norm: false,
        }
    }
    /// With this padding.
    pub fn padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }
    /// With this stride.
    pub fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }
    /// With this dilation.
    pub fn dilation(self, dilation: usize) -> Self {
        Self { dilation, ..self }
    }
    /// With this many groups.
    pub fn groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }
    /// Without a bias.
    pub fn no_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }
    /// With weight norm in the reference.
    pub fn weight_norm(self) -> Self {
        Self {
            weight_norm: true,
            ..self
        }
    }
}

impl Conv1d {
    /// Loads `weight` (or, with weight norm, `weight_g`/`weight_v`) and
    /// `bias` under `vb`.
    pub fn load(vb: &VarBuilder, spec: Conv1dSpec) -> Result<Self> {
        if spec.cin.checked_rem(spec.groups) != Some(0)
            || spec.cout.checked_rem(spec.groups) != Some(0)
        {
            return Err(Error::Config(format!(
                "{}: {} groups do not divide {} → {} channels",
                vb.prefix(),
                spec.groups,
                spec.cin,
                spec.cout
            )));
        }
        let shape = [spec.cout, spec.cin / spec.groups, spec.kernel];
        let weight = if spec.weight_norm {
            weight_maybe_norm(vb, &shape)?
        } else {
            vb.get(&shape[..], "weight")?
        };
        let bias = if spec.bias {
            Some(vb.get(spec.cout, "bias")?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, spec))
    }

    /// From tensors already loaded (`weight` `[cout, cin / groups, kernel]`).
    pub fn new(weight: Tensor, bias: Option<Tensor>, spec: Conv1dSpec) -> Self {
        Self {
            weight,
            bias,
            padding: spec.padding,
            stride: spec.stride,
            dilation: spec.dilation,
            groups: spec.groups,
        }
    }

    /// `[b, cin, t]` → `[b, cout, t']`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv1d(
            &self.weight,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?)?,
            None => y,
        })
    }
}

/// Batch norm in evaluation mode, folded into `x * scale + shift` per channel
/// (as PyTorch's CPU kernel computes it). Works on `[b, c, ...]`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm {
    /// `running_mean`, `running_var` and, when `affine`, `weight` and `bias`
    /// (eps 1e-5).
    pub fn load(vb: &VarBuilder, channels: usize, affine: bool) -> Result<Self> {
        let mean = vb.get(channels, "running_mean")?;
        let var = vb.get(channels, "running_var")?;
        let inv = (var + 1e-5)?.sqrt()?.recip()?;
        let (scale, shift) = if affine {
            let w = vb.get(channels, "weight")?;
            let b = vb.get(channels, "bias")?;
            let scale = (w * inv)?;
            let shift = (b - (&mean * &scale)?)?;
            (scale, shift)
        } else {
            let shift = (&mean * &inv)?.neg()?;
            (inv, shift)
        };
        Ok(Self { scale, shift })
    }

    /// Normalises channel dimension 1 of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut shape = vec![1usize; x.rank()];
        if shape.len() < 2 {
            return Err(Error::Config(format!(
                "batch norm needs [batch, channels, ...], got {:?}",
                x.dims()
            )));
        }
        shape[1] = self.scale.dim(0)?;
        let scale = self.scale.reshape(shape.as_slice())?;
        let shift = self.shift.reshape(shape.as_slice())?;
        Ok(x.broadcast_mul(&scale)?.broadcast_add(&shift)?)
    }
}

/// Layer norm over the last dimension (`weight`, `bias`).
pub fn layer_norm(vb: &VarBuilder, dim: usize, eps: f64) -> Result<candle_nn::LayerNorm> {
    let w = vb.get(dim, "weight")?;
    let b = vb.get(dim, "bias")?;
    Ok(candle_nn::LayerNorm::new(w, b, eps))
}

/// A linear layer (`weight` `[out, in]`, optional `bias`).
pub fn linear(vb: &VarBuilder, cin: usize, cout: usize, bias: bool) -> Result<candle_nn::Linear> {
    let w = vb.get((cout, cin), "weight")?;
    let b = if bias {
        Some(vb.get(cout, "bias")?)
    } else {
        None
    };
    Ok(candle_nn::Linear::new(w, b))
}

/// Mish: `x * tanh(softplus(x))`, softplus linear above 20 as in PyTorch.
pub fn mish(x: &Tensor) -> Result<Tensor> {
    let sp = x.exp()?.affine(1.0, 1.0)?.log()?;
    let big = x.gt(20.0)?;
    let sp = big.where_cond(x, &sp)?;
    Ok((x * sp.tanh()?)?)
}

/// Group norm with one group over `[b, c, t]` (eps 1e-5), per-channel affine.
pub fn group_norm_1(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let flat = x.reshape((b, c * t))?;
    let mean = flat.mean_keepdim(D::Minus1)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    let y = y.reshape((b, c, t))?;
    Ok(y.broadcast_mul(&weight.reshape((1, c, 1))?)?
        .broadcast_add(&bias.reshape((1, c, 1))?)?)
}

/// Depthwise convolution of `[b, C, t]` with one filter per channel
/// (`[C, k]`), zero-padded by `left` and `right`, stride 1, as `k` shifted
/// multiply-adds (candle runs grouped convolutions one group at a time).
pub fn depthwise_conv1d(x: &Tensor, w: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let k = w.dim(1)?;
    let out = (t + left + right + 1).checked_sub(k).ok_or_else(|| {
        Error::Config(format!(
            "depthwise convolution: kernel {k} longer than {t} frames"
        ))
    })?;
    let xp = x.pad_with_zeros(2, left, right)?;
    let mut acc = Tensor::zeros((b, c, out), x.dtype(), x.device())?;
    for j in 0..k {
        let wj = w.narrow(1, j, 1)?.reshape((1, c, 1))?;
        acc = (acc + xp.narrow(2, j, out)?.broadcast_mul(&wj)?)?;
    }
    Ok(acc)
}

// ---------------------------------------------------------------------------
// Writing checkpoints (random checkpoints in the official layout)
// ---------------------------------------------------------------------------

/// A node of a `.pth` file to write: a float32 tensor of a shape, or a
/// dictionary (written in the given order).
#[derive(Debug, Clone, PartialEq)]
pub enum PthNode {
    /// A tensor.
    Tensor(Vec<usize>),
    /// A dictionary.
    Dict(Vec<(String, PthNode)>),
}

impl PthNode {
    /// A dictionary of tensors nested by the first `depth` dot-separated
    /// parts of their names (`depth = 1`: `{"cfm": {"estimator.x": …}}`).
    pub fn nested(tensors: &[(String, Vec<usize>)], depth: usize) -> Self {
        fn insert(entries: &mut Vec<(String, PthNode)>, name: &str, depth: usize, shape: &[usize]) {
            if let Some((head, tail)) = name.split_once('.').filter(|_| depth > 0) {
                let i = match entries.iter().position(|(k, _)| k == head) {
                    Some(i) => i,
                    None => {
                        entries.push((head.to_string(), PthNode::Dict(Vec::new())));
                        entries.len() - 1
                    }
                };
                if let PthNode::Dict(d) = &mut entries[i].1 {
                    insert(d, tail, depth - 1, shape);
                    return;
                }
            }
            entries.push((name.to_string(), PthNode::Tensor(shape.to_vec())));
        }
        let mut entries = Vec::new();
        for (name, shape) in tensors {
            insert(&mut entries, name, depth, shape);
        }
        PthNode::Dict(entries)
    }
}

/// Pickle protocol 2, the subset `torch.save` writes for tensors.
struct Pickle {
    out: Vec<u8>,
    /// `(flattened name, shape)` of each storage, in key order.
    storages: Vec<(String, Vec<usize>)>,
}

impl Pickle {
    fn unicode(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, n: usize) {
        if let Ok(b) = u8::try_from(n) {
            self.out.extend_from_slice(&[b'K', b]);
        } else if let Ok(i) = i32::try_from(n) {
            self.out.push(b'J');
            self.out.extend_from_slice(&i.to_le_bytes());
        } else {
            // LONG1: 8 little-endian bytes (positive, so the top bit is clear).
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }

    fn tuple_of_ints(&mut self, v: &[usize]) {
        if v.is_empty() {
            self.out.push(b')');
            return;
        }
        self.out.push(b'(');
        for &x in v {
            self.int(x);
        }
        self.out.push(b't');
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn tensor(&mut self, name: &str, shape: &[usize]) {
        let key = self.storages.len().to_string();
        let numel: usize = shape.iter().product();
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        // The storage, by persistent id ('storage', FloatStorage, key, 'cpu', numel).
        self.out.push(b'(');
        self.unicode("storage");
        self.global("torch", "FloatStorage");
        self.unicode(&key);
        self.unicode("cpu");
        self.int(numel);
        self.out.extend_from_slice(b"tQ");
        self.int(0);
        self.tuple_of_ints(shape);
        self.tuple_of_ints(&strides);
        self.out.push(0x89); // NEWFALSE: requires_grad
        self.global("collections", "OrderedDict");
        self.out.extend_from_slice(b")R");
        self.out.extend_from_slice(b"tR");
        self.storages.push((name.to_string(), shape.to_vec()));
    }

    fn node(&mut self, node: &PthNode, prefix: &str) {
        match node {
            PthNode::Tensor(shape) => self.tensor(prefix, shape),
            PthNode::Dict(entries) => {
                self.out.push(b'}');
                if entries.is_empty() {
                    return;
                }
                self.out.push(b'(');
                for (k, v) in entries {
                    self.unicode(k);
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    self.node(v, &name);
                }
                self.out.push(b'u');
            }
        }
    }
}

/// Writes a PyTorch zip checkpoint (`torch.save`'s format, float32
/// storages) of `root`; `values(name, shape)` gives each tensor's values
/// (`name` flattened with `.`, `""` for a bare tensor) as it is written, so
/// a multi-GB file never sits in memory. Returns the bytes of tensor data.
pub fn write_pth(
    path: &Path,
    root: &PthNode,
    values: &mut dyn FnMut(&str, &[usize]) -> Vec<f32>,
) -> Result<u64> {
    use std::io::Write;
    let shown = path.display().to_string();
    let io = |source: std::io::Error| Error::Io {
        path: shown.clone(),
        source,
    };
    let zip_err = |e: zip::result::ZipError| Error::Format {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let mut p = Pickle {
        out: vec![0x80, 2],
        storages: Vec::new(),
    };
    p.node(root, "");
    p.out.push(b'.');
    let file = std::fs::File::create(path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    // Zip64 entries only where needed (PyTorch's reader rejects zip64
    // extra fields on small entries).
    let opts_for = |bytes: u64| opts.large_file(bytes >= u64::from(u32::MAX));
    let base = "archive";
    zip.start_file(format!("{base}/data.pkl"), opts)
        .map_err(zip_err)?;
    zip.write_all(&p.out).map_err(io)?;
    zip.start_file(format!("{base}/byteorder"), opts)
        .map_err(zip_err)?;
    zip.write_all(b"little").map_err(io)?;
    let mut bytes = 0u64;
    for (i, (name, shape)) in p.storages.iter().enumerate() {
        let v = values(name, shape);
        let numel: usize = shape.iter().product();
        if v.len() != numel {
            return Err(Error::Config(format!(
                "{name}: {} values for shape {shape:?}",
                v.len()
            )));
        }
        zip.start_file(format!("{base}/data/{i}"), opts_for(numel as u64 * 4))
            .map_err(zip_err)?;
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        zip.write_all(&raw).map_err(io)?;
        bytes += raw.len() as u64;
    }
    zip.start_file(format!("{base}/version"), opts)
        .map_err(zip_err)?;
    zip.write_all(b"3\n").map_err(io)?;
    zip.finish().map_err(zip_err)?.flush().map_err(io)?;
    Ok(bytes)
}

/// Writes a `.safetensors` file of float32 tensors, each tensor's values
/// from `values(name, shape)` as it is written. Returns the bytes of data.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    values: &mut dyn FnMut(&str, &[usize]) -> Vec<f32>,
) -> Result<u64> {
    use std::io::Write;
    let shown = path.display().to_string();
    let io = |source: std::io::Error| Error::Io {
        path: shown.clone(),
        source,
    };
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let len = shape.iter().product::<usize>() as u64 * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    // Pad the header so the data starts 8-byte aligned.
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    w.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&text).map_err(io)?;
    for (name, shape) in tensors {
        let v = values(name, shape);
        if v.len() != shape.iter().product::<usize>() {
            return Err(Error::Config(format!(
                "{name}: {} values for shape {shape:?}",
                v.len()
            )));
        }
        for x in v {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
    }
    w.flush().map_err(io)?;
    Ok(offset)
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    fn ramp(name: &str, shape: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|i| i as f32 + name.len() as f32 / 100.0)
            .collect()
    }

    #[test]
    fn pth_round_trip_nested_and_bare() {
        let dir = std::env::temp_dir().join(format!("itts-pth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tensors = vec![
            ("cfm.estimator.w".to_string(), vec![2, 3]),
            ("cfm.b".to_string(), vec![300]),
            ("gpt_layer.0.weight".to_string(), vec![4, 1, 2]),
            ("scalar".to_string(), vec![]),
        ];
        let root = PthNode::Dict(vec![("net".into(), PthNode::nested(&tensors, 1))]);
        let path = dir.join("s2mel.pth");
        let bytes = write_pth(&path, &root, &mut ramp).unwrap();
        assert_eq!(bytes, (6 + 300 + 8 + 1) * 4);
        let all = read_pth(&path, &Device::Cpu).unwrap();
        assert_eq!(all.len(), 4);
        for (name, shape) in &tensors {
            let full = format!("net.{name}");
            let t = &all[&full];
            assert_eq!(t.dims(), shape.as_slice(), "{full}");
            let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got, ramp(&full, shape), "{full}");
        }
        let path = dir.join("feat1.pt");
        write_pth(&path, &PthNode::Tensor(vec![3, 2]), &mut ramp).unwrap();
        let all = read_pth(&path, &Device::Cpu).unwrap();
        assert_eq!(all[""].dims(), &[3, 2]);
        let path = dir.join("m.safetensors");
        write_safetensors(&path, &tensors, &mut ramp).unwrap();
        let all = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let got: Vec<f32> = all["cfm.b"].to_vec1().unwrap();
        assert_eq!(got, ramp("cfm.b", &[300]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
