//! The engine's native K-quant kernels (Q4_K, Q5_K, Q6_K, Q4_1, and Q4_0/Q5_0 unpacked into Q8_0) on
//! matrices quantized by candle (the same bytes a GGUF file holds): each format's rows
//! dequantize to candle's values, every
//! kernel this CPU has gives the portable definition's bits, for any thread count and any
//! batching, and the product agrees with the dense product of the dequantized weights.

use crate::common::pool;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use cybergov::magi::candle::kernels::kquant::KMatrix;
use cybergov::magi::candle::kernels::matrix::Matrix;
use cybergov::magi::candle::kernels::q6k::Q6KMatrix;
use cybergov::magi::candle::kernels::q8::{self, Kernel, Q8Acts, Q8Matrix};

/// Deterministic pseudo-random values in [-1, 1), with a few rows scaled up so that the
/// super-block scales differ.
fn values(n: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            v * (1.0 + ((i / cols) % 3) as f32)
        })
        .collect()
}

/// A `rows` × `cols` matrix of `dtype` as the engine loads it, and candle's dequantization of
/// the same bytes.
fn matrix(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> (Matrix, Vec<f32>) {
    let dense =
        Tensor::from_vec(values(rows * cols, cols, seed), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&dense, dtype).unwrap();
    let bytes = q.data().unwrap();
    let m = match dtype {
        GgmlDType::Q4K => Matrix::K(KMatrix::from_q4_k_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q5K => Matrix::K(KMatrix::from_q5_k_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q6K => Matrix::Q6K(Q6KMatrix::from_q6_k_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q8_0 => Matrix::Q8(Q8Matrix::from_q8_0_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q4_1 => Matrix::K(KMatrix::from_q4_1_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q4_0 => Matrix::Q8(Q8Matrix::from_q4_0_bytes(&bytes, rows, cols).unwrap()),
        GgmlDType::Q5_0 => Matrix::Q8(Q8Matrix::from_q5_0_bytes(&bytes, rows, cols).unwrap()),
        other => panic!("{other:?}"),
    };
    let reference = q
        .dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap();
    (m, reference)
}

/// Every kernel this CPU can run (AVX-512 implies AVX2 here).
fn kernels() -> &'static [Kernel] {
    match q8::detected() {
        Kernel::Portable => &[Kernel::Portable],
        Kernel::Avx2 => &[Kernel::Portable, Kernel::Avx2],
        Kernel::Avx512Vnni => &[Kernel::Portable, Kernel::Avx2, Kernel::Avx512Vnni],
    }
}

/// `format`: what the engine computes `dtype` as.
fn check(dtype: GgmlDType, format: &str) {
    // 37 rows: nine tiles of four and a single row; 512 columns: two super-blocks.
    let (rows, cols, n) = (37, 512, 5);
    let (w, reference) = matrix(dtype, rows, cols, 7);
    assert_eq!(w.format(), format);

    // The rows dequantize to candle's values (the same formula on the same bytes: Q4_0 and
    // Q5_0 become Q8_0 without losing anything).
    let mut row = vec![0f32; cols];
    for r in [0, 1, 20, rows - 1] {
        w.dequantize_row(r, &mut row);
        let want = &reference[r * cols..(r + 1) * cols];
        let worst = row
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-6, "{dtype:?} row {r}: off by {worst}");
    }

    let x = values(n * cols, cols, 9);
    let mut acts = Q8Acts::default();
    acts.quantize(&x, cols);
    let run = |kernel: Kernel, acts: &Q8Acts| {
        let mut out = vec![0f32; acts.n * rows];
        w.matmul_with(kernel, acts, &mut out);
        out
    };
    let portable = run(Kernel::Portable, &acts);
    for &k in kernels() {
        assert_eq!(portable, run(k, &acts), "{dtype:?}: kernel {k:?}");
    }
    for threads in [1, 2, 3] {
        let out = pool(threads).install(|| {
            let mut out = vec![0f32; n * rows];
            w.matmul(&acts, &mut out);
            out
        });
        assert_eq!(portable, out, "{dtype:?}: {threads} threads");
    }
    // Each token alone gives the same bits as within the batch.
    for t in 0..n {
        let mut one = Q8Acts::default();
        one.quantize(&x[t * cols..(t + 1) * cols], cols);
        for &k in kernels() {
            assert_eq!(
                run(k, &one),
                portable[t * rows..(t + 1) * rows],
                "{dtype:?}: token {t} alone, {k:?}"
            );
        }
    }

    // Against the dense product of candle's dequantized weights and the exact activations:
    // only the activations' 8-bit rounding separates them.
    let mut num = 0f32;
    let mut den = 0f32;
    for t in 0..n {
        for r in 0..rows {
            let exact: f32 = (0..cols)
                .map(|c| reference[r * cols + c] * x[t * cols + c])
                .sum();
            num += (portable[t * rows + r] - exact).powi(2);
            den += exact * exact;
        }
    }
    let distance = (num / den).sqrt();
    println!("{dtype:?}: relative L2 {distance:.5} from the dense product");
    assert!(distance < 0.01, "{dtype:?}: relative L2 {distance}");
}

#[test]
fn q4_k_kernels_agree_to_the_bit_and_with_the_dense_product() {
    check(GgmlDType::Q4K, "Q4_K");
}

#[test]
fn q5_k_kernels_agree_to_the_bit_and_with_the_dense_product() {
    check(GgmlDType::Q5K, "Q5_K");
}

#[test]
fn q6_k_kernels_agree_to_the_bit_and_with_the_dense_product() {
    check(GgmlDType::Q6K, "Q6_K");
}

#[test]
fn q4_1_kernels_agree_to_the_bit_and_with_the_dense_product() {
    check(GgmlDType::Q4_1, "Q4_1");
    // Rows of an odd number of blocks cannot be taken in pairs: the engine converts them.
    let bytes = QTensor::quantize(
        &Tensor::from_vec(values(2 * 96, 96, 3), (2, 96), &Device::Cpu).unwrap(),
        GgmlDType::Q4_1,
    )
    .unwrap()
    .data()
    .unwrap()
    .into_owned();
    assert!(KMatrix::from_q4_1_bytes(&bytes, 2, 96).is_none());
}

#[test]
fn q4_0_and_q5_0_become_q8_0_exactly() {
    check(GgmlDType::Q4_0, "Q8_0");
    check(GgmlDType::Q5_0, "Q8_0");
}

#[test]
fn a_stack_of_formats_computes_each_part_with_its_own_arithmetic() {
    // A Q4_K_M layer's q, k (Q4_K) and v (Q6_K) projections, fused.
    let cols = 256;
    let parts = [
        matrix(GgmlDType::Q4K, 8, cols, 1).0,
        matrix(GgmlDType::Q4K, 4, cols, 2).0,
        matrix(GgmlDType::Q6K, 4, cols, 3).0,
    ];
    let stack = Matrix::stack(parts.to_vec());
    assert_eq!(stack.format(), "Q4_K+Q6_K");
    assert_eq!(stack.rows(), 16);
    let (n, x) = (3, values(3 * cols, cols, 4));
    let mut acts = Q8Acts::default();
    acts.quantize(&x, cols);
    let mut fused = vec![0f32; n * 16];
    stack.matmul(&acts, &mut fused);
    let mut offset = 0;
    let mut row = vec![0f32; cols];
    let mut fused_row = vec![0f32; cols];
    for p in &parts {
        let mut alone = vec![0f32; n * p.rows()];
        p.matmul(&acts, &mut alone);
        for t in 0..n {
            assert_eq!(
                alone[t * p.rows()..(t + 1) * p.rows()],
                fused[t * 16 + offset..t * 16 + offset + p.rows()]
            );
        }
        p.dequantize_row(1, &mut row);
        stack.dequantize_row(offset + 1, &mut fused_row);
        assert_eq!(row, fused_row);
        offset += p.rows();
    }
}
