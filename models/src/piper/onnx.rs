//! Reading the weights of a Piper ONNX export: the graph's initializers as
//! candle tensors, under their PyTorch module names.
//!
//! Only the few protobuf fields needed are declared (prost derives them, so
//! no protoc is needed). Initializers without a module name (`onnx::Conv_8168`,
//! or the embedding exported as `sid`) are named after the node that consumes
//! them: the weight of `/flow/flows.0/enc/in_layers.3/Conv` becomes
//! `flow.flows.0.enc.in_layers.3.weight`. The network reads them through a
//! `candle_nn::VarBuilder` ([`Weights::var_builder`]), which checks each
//! tensor's shape.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use prost::Message;

use crate::Error;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// ONNX's code for 32-bit floats.
const FLOAT: i32 = 1;

/// The float initializers of an ONNX file, by module name.
pub struct Weights {
    map: HashMap<String, Tensor>,
    path: String,
}

impl Weights {
    /// Reads every float initializer of `path` onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let not_vits = |why: &str| Error::NotPiperVoice {
            path: path.display().to_string(),
            reason: why.to_owned(),
        };
        let model = ModelProto::decode(bytes.as_slice())
            .map_err(|e| not_vits(&format!("not an ONNX model: {e}")))?;
        let graph = model
            .graph
            .ok_or_else(|| not_vits("the model has no graph"))?;
        // Who consumes each initializer, for those without a module name.
        let mut consumer: HashMap<&str, (&str, usize)> = HashMap::new();
        for n in &graph.node {
            for (i, input) in n.input.iter().enumerate() {
                consumer
                    .entry(input.as_str())
                    .or_insert((n.name.as_str(), i));
            }
        }
        let mut map = HashMap::new();
        for t in &graph.initializer {
            if t.data_type != FLOAT {
                continue;
            }
            let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            let n: usize = dims.iter().product();
            let data: Vec<f32> = if !t.raw_data.is_empty() {
                if t.raw_data.len() != n * 4 {
                    return Err(not_vits(&format!("initializer {} has a bad size", t.name)));
                }
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            };
            if data.len() != n {
                return Err(not_vits(&format!("initializer {} has a bad size", t.name)));
            }
            let tensor = Tensor::from_vec(data, dims, device)?;
            map.insert(module_name(&t.name, &consumer), tensor);
        }
        Ok(Self {
            map,
            path: path.display().to_string(),
        })
    }

    /// A `VarBuilder` over the tensors (f32, on the device they were loaded
    /// onto): `vb.get(shape, name)` fails for a missing tensor or another
    /// shape, naming the tensor.
    ///
    /// ```no_run
    /// use models::piper::onnx::Weights;
    /// let dev = candle_core::Device::Cpu;
    /// let w = Weights::load("voice.onnx".as_ref(), &dev)?;
    /// let vb = w.var_builder(&dev);
    /// let emb = vb.get((256, 192), "enc_p.emb.weight")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.map.clone(), DType::F32, device)
    }

    /// The file the weights were read from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tensor called `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<Tensor, Error> {
        self.map
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotPiperVoice {
                path: self.path.clone(),
                reason: format!("missing weight {name}"),
            })
    }

    /// The tensor called `name`, when present.
    pub fn maybe(&self, name: &str) -> Option<Tensor> {
        self.map.get(name).cloned()
    }

    /// Every tensor's name and shape, sorted by name.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(n, t)| (n.clone(), t.dims().to_vec()))
            .collect();
        v.sort();
        v
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The module name of an initializer: its own name when it is one
/// (`dec.ups.0.weight`), else derived from its consumer node.
fn module_name(name: &str, consumer: &HashMap<&str, (&str, usize)>) -> String {
    let has_module_name =
        name.contains('.') && !name.starts_with("onnx::") && !name.starts_with('/');
    if has_module_name {
        return name.to_owned();
    }
    let Some((node, idx)) = consumer.get(name) else {
        return name.to_owned();
    };
    let conv = node.ends_with("/Conv") || node.ends_with("/ConvTranspose");
    let param = match (*idx, node.ends_with("/Gather"), conv) {
        // The lookup table of an embedding.
        (0, true, _) => "weight",
        // Conv(x, weight, bias).
        (1, _, true) => "weight",
        (2, _, true) => "bias",
        // A constant folded by the exporter: keep its own name.
        _ => return name.to_owned(),
    };
    match node.trim_start_matches('/').rsplit_once('/') {
        Some((module, _)) => format!("{}.{param}", module.replace('/', ".")),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_consumers() {
        let mut c = HashMap::new();
        c.insert("onnx::Conv_1", ("/flow/flows.0/enc/in_layers.3/Conv", 1));
        c.insert("onnx::Conv_2", ("/flow/flows.0/enc/in_layers.3/Conv", 2));
        c.insert("sid", ("/enc_p/emb/Gather", 0));
        c.insert("/dp/flows.0/Exp_output_0", ("/dp/flows.7/Mul", 1));
        assert_eq!(
            module_name("onnx::Conv_1", &c),
            "flow.flows.0.enc.in_layers.3.weight"
        );
        assert_eq!(
            module_name("onnx::Conv_2", &c),
            "flow.flows.0.enc.in_layers.3.bias"
        );
        assert_eq!(module_name("sid", &c), "enc_p.emb.weight");
        assert_eq!(module_name("dec.ups.0.weight", &c), "dec.ups.0.weight");
        assert_eq!(
            module_name("/dp/flows.0/Exp_output_0", &c),
            "/dp/flows.0/Exp_output_0"
        );
    }

    /// The default voice's directory, when installed (scripts/fetch-models.sh).
    fn default_voice() -> Option<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache_hub/piper/en_US-joe-medium");
        if dir.join("en_US-joe-medium.onnx").is_file() {
            return Some(dir);
        }
        assert!(
            std::env::var_os("MODELS_REQUIRE_VOICE").is_none(),
            "MODELS_REQUIRE_VOICE is set but the voice is missing"
        );
        eprintln!("SKIPPED: needs the default voice (run scripts/fetch-models.sh)");
        None
    }

    /// Loads a copy of the voice in `dir` whose initializer for module weight
    /// `target` went through `edit`, and returns the load error.
    fn load_edited(
        dir: &Path,
        tag: &str,
        target: &str,
        edit: fn(&mut GraphProto, usize),
    ) -> String {
        let name = "en_US-joe-medium";
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = model.graph.as_mut().unwrap();
        let mut consumer: HashMap<&str, (&str, usize)> = HashMap::new();
        for n in &graph.node {
            for (i, input) in n.input.iter().enumerate() {
                consumer
                    .entry(input.as_str())
                    .or_insert((n.name.as_str(), i));
            }
        }
        let index = graph
            .initializer
            .iter()
            .position(|t| module_name(&t.name, &consumer) == target)
            .unwrap_or_else(|| panic!("{target} is in the voice"));
        edit(graph, index);
        let out = std::env::temp_dir().join(format!("piper-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("v.onnx"), model.encode_to_vec()).unwrap();
        std::fs::copy(
            dir.join(format!("{name}.onnx.json")),
            out.join("v.onnx.json"),
        )
        .unwrap();
        let err = crate::Voice::load(&out, &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&out);
        err
    }

    #[test]
    fn a_voice_file_missing_a_tensor_fails_at_load_naming_it() {
        let Some(dir) = default_voice() else { return };
        // A bias named after its consumer node (`onnx::Conv_…` in the file).
        let target = "flow.flows.2.enc.res_skip_layers.1.bias";
        let err = load_edited(&dir, "missing", target, |g, i| {
            g.initializer.remove(i);
        });
        assert!(err.contains("v.onnx is not a Piper VITS voice"), "{err}");
        assert!(
            err.contains(&format!("cannot find tensor {target}")),
            "{err}"
        );
    }

    #[test]
    fn a_voice_file_with_a_reshaped_tensor_fails_at_load_naming_it_and_the_shape() {
        let Some(dir) = default_voice() else { return };
        // Same number of values, the first two dimensions swapped.
        let err = load_edited(&dir, "reshaped", "dec.ups.1.weight", |g, i| {
            g.initializer[i].dims.swap(0, 1);
        });
        assert!(
            err.contains(
                "shape mismatch for dec.ups.1.weight, expected: [128, 64, 16], got: [64, 128, 16]"
            ),
            "{err}"
        );
        // A hyper-parameter's anchor of the wrong rank is named too.
        let err = load_edited(&dir, "rank", "enc_p.emb.weight", |g, i| {
            let n: i64 = g.initializer[i].dims.iter().product();
            g.initializer[i].dims = vec![n];
        });
        assert!(err.contains("shape mismatch for enc_p.emb.weight"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_onnx_is_a_clear_error() {
        let p = std::env::temp_dir().join(format!("not-onnx-{}.onnx", std::process::id()));
        std::fs::write(&p, b"\xff\xff\xff definitely not protobuf").unwrap();
        let err = Weights::load(&p, &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = std::fs::remove_file(&p);
        assert!(err.contains("not a Piper VITS voice"), "{err}");
    }
}
