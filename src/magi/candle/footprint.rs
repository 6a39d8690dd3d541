//! What a GGUF model needs once the engine has loaded it, read from the file's header alone, so
//! that a jury that cannot fit in memory is refused before anything is loaded or any stage runs.

use super::MAX_CONTEXT;
use super::kernels::matrix::loaded_bytes;
use super::transformer;
use crate::magi::model::ModelError;
use candle_core::quantized::gguf_file;
use std::path::Path;

/// A model's size on disk and in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// `general.architecture`.
    pub arch: String,
    /// The dominant type of its weight matrices, e.g. `Q4_K`.
    pub quantization: Option<String>,
    /// Parameters (values of every tensor).
    pub parameters: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// Bytes held once loaded: every matrix in the engine's form of its format (Q4_K, Q5_K,
    /// Q6_K, Q4_1 and Q8_0 natively, others converted to Q8_0), every vector as f32, and a KV cache
    /// for the engine's whole context.
    pub memory_bytes: u64,
}

/// Reads `path`'s header and estimates its [`Footprint`].
pub fn footprint(path: &Path) -> Result<Footprint, ModelError> {
    let err = |m: String| ModelError::Load {
        path: path.display().to_string(),
        message: m,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let file_bytes = f.metadata().map_err(|e| err(e.to_string()))?.len();
    let ct = gguf_file::Content::read(&mut f).map_err(|e| err(format!("not a GGUF file: {e}")))?;
    let cfg = transformer::Config::from_gguf(&ct, MAX_CONTEXT).map_err(|e| err(e.to_string()))?;
    let (mut parameters, mut weights) = (0u64, 0u64);
    for info in ct.tensor_infos.values() {
        let n = info.shape.elem_count() as u64;
        parameters += n;
        weights += if info.shape.dims().len() >= 2 {
            let dims = info.shape.dims();
            let cols = dims[dims.len() - 1];
            loaded_bytes(info.ggml_dtype, n as usize / cols, cols) as u64
        } else {
            n * 4
        };
    }
    // Keys and values of every layer for the context, rounded up to tiles of 8, as f32.
    let kv = cfg.layers as u64
        * 2
        * (cfg.context.div_ceil(8) * 8) as u64
        * (cfg.kv_heads * cfg.head_dim) as u64
        * 4;
    Ok(Footprint {
        arch: cfg.arch,
        quantization: super::quantization(&ct),
        parameters,
        file_bytes,
        memory_bytes: weights + kv,
    })
}

/// Memory the system can give without swapping (`MemAvailable`), when it says.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
