//! Reading a GGUF file's tensors into the engine's formats.

use super::EngineError;
use crate::kernels::kquant::KMatrix;
use crate::kernels::matrix::Matrix;
use crate::kernels::q6k::Q6KMatrix;
use crate::kernels::q8::Q8Matrix;
use candle_core::quantized::{GgmlDType, gguf_file};
use std::io::{Read, Seek, SeekFrom};

/// Parses a tensor's raw bytes into a matrix (`None`: they do not fit its shape).
type Parse = fn(&[u8], usize, usize) -> Option<Matrix>;

/// Reads tensors from a GGUF file without keeping more than one dense copy at a time.
pub(super) struct Reader<'a, R> {
    pub(super) ct: &'a gguf_file::Content,
    pub(super) f: &'a mut R,
}

impl<R: Read + Seek> Reader<'_, R> {
    pub(super) fn err(name: &str, e: impl std::fmt::Display) -> EngineError {
        EngineError::Read {
            name: name.into(),
            message: e.to_string(),
        }
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    pub(super) fn dense(&mut self, name: &str) -> Result<Vec<f32>, EngineError> {
        let t = self
            .ct
            .tensor(self.f, name, &candle_core::Device::Cpu)
            .map_err(|e| Self::err(name, e))?;
        let t = t
            .dequantize(&candle_core::Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Self::err(name, e))?;
        Ok(t)
    }

    pub(super) fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, EngineError> {
        let v = self.dense(name)?;
        if v.len() != len {
            return Err(Self::err(
                name,
                format!("{} values, expected {len}", v.len()),
            ));
        }
        Ok(v)
    }

    pub(super) fn matrix(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, EngineError> {
        let info = self
            .ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| Self::err(name, "missing"))?;
        if info.shape.dims() != [rows, cols] {
            return Err(Self::err(
                name,
                format!("shape {:?}, expected [{rows}, {cols}]", info.shape.dims()),
            ));
        }
        let native: Option<Parse> = match info.ggml_dtype {
            GgmlDType::Q8_0 => Some(|b, r, c| Q8Matrix::from_q8_0_bytes(b, r, c).map(Matrix::Q8)),
            GgmlDType::Q4_0 => Some(|b, r, c| Q8Matrix::from_q4_0_bytes(b, r, c).map(Matrix::Q8)),
            GgmlDType::Q5_0 => Some(|b, r, c| Q8Matrix::from_q5_0_bytes(b, r, c).map(Matrix::Q8)),
            GgmlDType::Q4K => Some(|b, r, c| KMatrix::from_q4_k_bytes(b, r, c).map(Matrix::K)),
            GgmlDType::Q5K => Some(|b, r, c| KMatrix::from_q5_k_bytes(b, r, c).map(Matrix::K)),
            // Q4_1 natively where rows hold whole pairs of blocks, as Q8_0 elsewhere.
            GgmlDType::Q4_1 if cols.is_multiple_of(64) => {
                Some(|b, r, c| KMatrix::from_q4_1_bytes(b, r, c).map(Matrix::K))
            }
            GgmlDType::Q6K => Some(|b, r, c| Q6KMatrix::from_q6_k_bytes(b, r, c).map(Matrix::Q6K)),
            _ => None,
        };
        if let Some(parse) = native {
            // A format the engine computes with: read the raw blocks, no dense copy.
            let dtype = info.ggml_dtype;
            let len = rows * cols / dtype.block_size() * dtype.type_size();
            let start = self.ct.tensor_data_offset + info.offset;
            let mut bytes = vec![0u8; len];
            self.f
                .seek(SeekFrom::Start(start))
                .and_then(|_| self.f.read_exact(&mut bytes))
                .map_err(|e| Self::err(name, e))?;
            return parse(&bytes, rows, cols)
                .ok_or_else(|| Self::err(name, format!("bad {dtype:?} data")));
        }
        let dense = self.dense(name)?;
        Ok(Matrix::Q8(Q8Matrix::quantize(&dense, rows, cols)))
    }
}
