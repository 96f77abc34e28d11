//! The model directory: `model.safetensors` (LSTM-NAD's weights, `f32`, one tensor per layer
//! weight and bias, names and shapes as [`crate::nn::Layout::tensors`]), `model.json` (the
//! metadata: version, feature names, network and training configuration, normalisation
//! statistics, threshold, training history) and `baselines.json` (the stability profile and
//! the isolation forest, with their thresholds).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::baseline::{IsolationForest, Stability};
use crate::data::FEATURE_NAMES;
use crate::detector::{Meta, Model, VERSION};
use crate::nn::Net;

const WEIGHTS: &str = "model.safetensors";
const META: &str = "model.json";
const BASELINES: &str = "baselines.json";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Baselines {
    stability_2018: Stability,
    isolation_forest: IsolationForest,
}

/// The model directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system.
    #[error("cannot {what} {path}")]
    Io {
        /// `read`, `write`, `create`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// JSON that does not parse as what it should be.
    #[error("{path} is not a valid model file")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The tensor file is unreadable.
    #[error("{path} is not a valid safetensors file")]
    Tensors {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The files do not fit together or come from another version.
    #[error("{path}: {problem}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        problem: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_owned(), source }
}

/// Writes `model` into directory `dir` (created if missing).
pub fn save(model: &Model, dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let cfg = &model.net.cfg;
    let bytes: Vec<u8> = model.net.params.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = cfg.layout().tensors(cfg);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, range, shape)| {
            let view =
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), &bytes[range.start * 4..range.end * 4])
                    .expect("layout shapes match their ranges");
            ((*name).to_owned(), view)
        })
        .collect();
    let info = HashMap::from([
        ("format".to_owned(), "palisade-lstm-nad".to_owned()),
        ("version".to_owned(), VERSION.to_string()),
    ]);
    let path = dir.join(WEIGHTS);
    let data = safetensors::serialize(views, &Some(info))
        .map_err(|source| StoreError::Tensors { path: path.clone(), source })?;
    std::fs::write(&path, data).map_err(io("write", &path))?;
    let meta = serde_json::to_vec_pretty(&model.meta).expect("metadata serialises");
    let path = dir.join(META);
    std::fs::write(&path, meta).map_err(io("write", &path))?;
    let b = Baselines { stability_2018: model.stability.clone(), isolation_forest: model.iforest.clone() };
    let path = dir.join(BASELINES);
    std::fs::write(&path, serde_json::to_vec(&b).expect("baselines serialise")).map_err(io("write", &path))?;
    Ok(())
}

/// Largest layer width and sequence length a model file may ask for: far above any useful
/// LSTM-NAD, low enough that a hostile file cannot make the loader allocate without bound.
pub const MAX_WIDTH: usize = 4096;

/// Reads a model directory written by [`save`], checking that its parts fit together.
pub fn load(dir: &Path) -> Result<Model, StoreError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(io("read", &path))
    };
    let (meta, weights, baselines) = (read(META)?, read(WEIGHTS)?, read(BASELINES)?);
    from_bytes(dir, &meta, &weights, &baselines)
}

/// Builds a model from the bytes of its three files (`dir` names them in errors). Never
/// panics: every part is checked against the others.
pub fn from_bytes(dir: &Path, meta: &[u8], weights: &[u8], baselines: &[u8]) -> Result<Model, StoreError> {
    let path = dir.join(META);
    let meta: Meta = serde_json::from_slice(meta).map_err(|source| StoreError::Json { path: path.clone(), source })?;
    let mismatch = |path: &Path, problem: String| StoreError::Mismatch { path: path.to_owned(), problem };
    if meta.version != VERSION {
        return Err(mismatch(&path, format!("model format version {} (this build reads {VERSION})", meta.version)));
    }
    if meta.features != FEATURE_NAMES {
        return Err(mismatch(&path, format!("features {:?} differ from {:?}", meta.features, FEATURE_NAMES)));
    }
    let cfg = meta.options.net;
    let widths = [cfg.steps, cfg.lstm1, cfg.lstm2, cfg.dense1, cfg.dense2];
    if cfg.features != FEATURE_NAMES.len() || widths.contains(&0) || widths.iter().any(|w| *w > MAX_WIDTH) {
        return Err(mismatch(&path, format!("unusable network configuration {cfg:?} (sizes 1-{MAX_WIDTH})")));
    }
    let n = &meta.norm;
    if !(n.mean.iter().all(|m| m.is_finite()) && n.std.iter().all(|s| s.is_finite() && *s > 0.0)) {
        return Err(mismatch(&path, "normalisation statistics must be finite with positive spreads".into()));
    }
    if !meta.threshold.is_finite() {
        return Err(mismatch(&path, format!("threshold {} is not a finite number", meta.threshold)));
    }
    let wpath = dir.join(WEIGHTS);
    let st = SafeTensors::deserialize(weights).map_err(|source| StoreError::Tensors { path: wpath.clone(), source })?;
    let lay = cfg.layout();
    let mut params = vec![0.0f32; lay.total];
    for (name, range, shape) in lay.tensors(&cfg) {
        let t = st.tensor(name).map_err(|source| StoreError::Tensors { path: wpath.clone(), source })?;
        if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
            return Err(mismatch(
                &wpath,
                format!("tensor {name} is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape()),
            ));
        }
        for (p, c) in params[range].iter_mut().zip(t.data().chunks_exact(4)) {
            *p = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    if params.iter().any(|p| !p.is_finite()) {
        return Err(mismatch(&wpath, "a weight is not a finite number".into()));
    }
    let bpath = dir.join(BASELINES);
    let b: Baselines =
        serde_json::from_slice(baselines).map_err(|source| StoreError::Json { path: bpath.clone(), source })?;
    if b.stability_2018.period_ns == 0 {
        return Err(mismatch(&bpath, "the stability profile's period is zero".into()));
    }
    if b.stability_2018.profile.len() != b.stability_2018.slots || b.stability_2018.slots == 0 {
        return Err(mismatch(&bpath, "the stability profile has the wrong number of slots".into()));
    }
    Ok(Model { meta, net: Net { cfg, params }, stability: b.stability_2018, iforest: b.isolation_forest })
}
