//! IEEE half precision, the format of the KV cache (as in llama.cpp: half the bytes a decode
//! step reads from its context) and of the scales in the quantized weight formats.
//!
//! Both conversions are exact IEEE operations — half to single is exact, single to half
//! rounds to nearest, ties to even — so the hardware's conversion instructions (F16C) give the
//! same bits as these portable definitions, and a value stored in the cache is the same
//! whichever kernel wrote or reads it.

/// IEEE half to single precision (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: normalise into a single-precision normal.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Single to half precision, rounded to nearest, ties to even (what `vcvtps2ph` does with
/// round-to-nearest); too large a value becomes infinity, a NaN stays a (quiet) NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    // The exponent in half's bias.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    // The kept bits, and how many low bits of the (implicit-bit) mantissa are dropped.
    let (kept, m, shift) = if e >= 1 {
        ((e as u32) << 10 | man >> 13, man, 13)
    } else if e >= -10 {
        // A subnormal half: value = mantissa · 2⁻²⁴.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        (m >> shift, m, shift)
    } else {
        // Below half the smallest subnormal: zero.
        return sign;
    };
    let rest = m & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    // A carry out of the mantissa moves to the next binade (or to infinity), as it should.
    let rounded = if rest > half || (rest == half && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    };
    sign | rounded as u16
}
