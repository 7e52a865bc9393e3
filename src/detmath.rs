//! Deterministic math: the codec's `exp`, `expm1` and `ln`.
//!
//! A decoder's reconstruction must be bit-identical on every platform, and so must an encoder's
//! output bytes. IEEE-754 `+ - * /` and `sqrt` are correctly rounded everywhere, so they give
//! the same bits on every machine; transcendental functions are not: `f64::exp` and friends
//! call the platform's libm, and two libms (glibc, musl, macOS, MSVC, ...) may differ in the
//! last bit. So every transcendental on the normative path (the schedule's alpha, sigma,
//! transition and DDIM coefficients, the multiscale rescale) and in the encoder's rate control
//! comes from this one software implementation: the pure-Rust `libm` crate, pinned at
//! `=0.2.16` in `Cargo.toml` (ports of musl's / FreeBSD msun's `e_exp.c`, `s_expm1.c` and
//! `e_log.c`, in plain IEEE double arithmetic). `spec/reference/detmath.py` is a line-by-line
//! Python port of the same three functions, checked against the known answers below.
//!
//! Upgrading `libm` is a format change unless these known answers (and the conformance tests)
//! still pass. (On 32-bit x86 without SSE2, `libm` computes `exp` on the x87 unit; there f64
//! arithmetic itself is not IEEE binary64 and bit-exactness is not claimed.)

/// `e^x` (`libm::exp`).
#[inline]
pub fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// `e^x - 1`, accurate near 0 (`libm::expm1`).
#[inline]
pub fn expm1(x: f64) -> f64 {
    libm::expm1(x)
}

/// Natural logarithm (`libm::log`).
#[inline]
pub fn ln(x: f64) -> f64 {
    libm::log(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Function = fn(f64) -> f64;

    /// `(function, input bits, output bits)`; `spec/reference/detmath.py` holds the same table.
    /// Inputs: lambdas from -30 to 30 (grid points, the multiscale thresholds), multiples of
    /// `ln 2 / 2` (the argument-reduction boundaries), tiny and small arguments of `expm1` of
    /// both signs (transition steps), the saturating and overflow-free large ones, and `ln` of
    /// typical SNRs, powers of two, a value next to 1 and the smallest subnormal.
    /// (`exp(-10)`, `exp(-3.75)` and `exp(-1.75)` are among the values where glibc's `exp`
    /// rounds differently.)
    #[rustfmt::skip]
    const KNOWN_ANSWERS: &[(Function, u64, u64)] = &[
        (exp, 0xC03E000000000000, 0x3D3A56E0C2AC7F75), // exp(-30.0) = 9.357622968840175e-14
        (exp, 0xC024000000000000, 0x3F07CD79B5647C9A), // exp(-10.0) = 4.539992976248485e-05
        (exp, 0xC00E000000000000, 0x3F981509354F0D2A), // exp(-3.75) = 0.02351774585600911
        (exp, 0xBFFC000000000000, 0x3FC63E397E022072), // exp(-1.75) = 0.1737739434504451
        (exp, 0xBFE62E42FEFA39EF, 0x3FE0000000000000), // exp(-0.6931471805599453) = 0.5
        (exp, 0x3DDB7CDFD9D7BDBB, 0x3FF000000006DF38), // exp(1e-10) = 1.0000000001
        (exp, 0xBDDB7CDFD9D7BDBB, 0x3FEFFFFFFFF24190), // exp(-1e-10) = 0.9999999999
        (exp, 0x3FC0000000000000, 0x3FF2216045B6F5CD), // exp(0.125) = 1.1331484530668263
        (exp, 0x3FD62E42FEFA39EF, 0x3FF6A09E667F3BCC), // exp(0.34657359027997264) = 1.414213562373095
        (exp, 0x3FF0A2B23F3BAB73, 0x4006A09E667F3BCC), // exp(1.0397207708399179) = 2.82842712474619
        (exp, 0x3FE62E42FEFA39EF, 0x4000000000000000), // exp(0.6931471805599453) = 2.0
        (exp, 0x4000A2B23F3BAB73, 0x401FFFFFFFFFFFFE), // exp(2.0794415416798357) = 7.999999999999998
        (exp, 0x400A147AE147AE14, 0x403A0CAE77570DB5), // exp(3.26) = 26.049537142518336
        (exp, 0x4022000000000000, 0x40BFA7157C470F82), // exp(9.0) = 8103.083927575384
        (exp, 0x402C000000000000, 0x413259AC48BF05D7), // exp(14.0) = 1202604.2841647768
        (exp, 0x403E000000000000, 0x42A370470AEC28ED), // exp(30.0) = 10686474581524.463
        (expm1, 0x3DDB7CDFD9D7BDBB, 0x3DDB7CDFD9DDA4E3), // expm1(1e-10) = 1.00000000005e-10
        (expm1, 0xBDDB7CDFD9D7BDBB, 0xBDDB7CDFD9D1D693), // expm1(-1e-10) = -9.999999999500001e-11
        (expm1, 0x3C670EF54646D497, 0x3C670EF54646D497), // expm1(1e-17) = 1e-17
        (expm1, 0xBFD3333333333333, 0xBFD0966F2C7907F6), // expm1(-0.3) = -0.2591817793182821
        (expm1, 0x3F40624DD2F1A9FC, 0x3F40635A4DE01B21), // expm1(0.0005) = 0.0005001250208359378
        (expm1, 0xBF40624DD2F1A9FC, 0xBF4061416EEB48BC), // expm1(-0.0005) = -0.0004998750208307294
        (expm1, 0xBF70000000000000, 0xBF6FF00554004439), // expm1(-0.00390625) = -0.00389863052988251
        (expm1, 0x3FD999999999999A, 0x3FDF7A0E4BEEFF80), // expm1(0.4) = 0.49182469764127035
        (expm1, 0x3FE6666666666666, 0x3FF03854C24D130D), // expm1(0.7) = 1.0137527074704764
        (expm1, 0xBFE62E42FEFA39EF, 0xBFE0000000000000), // expm1(-0.6931471805599453) = -0.5
        (expm1, 0xBFECCCCCCCCCCCCD, 0xBFE2FD619FFBC8F1), // expm1(-0.9) = -0.5934303402594009
        (expm1, 0x3FF3333333333333, 0x40028F99761065A4), // expm1(1.2) = 2.3201169227365472
        (expm1, 0xC004000000000000, 0xBFED5F8F47ED617C), // expm1(-2.5) = -0.9179150013761013
        (expm1, 0xC03E000000000000, 0xBFEFFFFFFFFFFCB5), // expm1(-30.0) = -0.9999999999999064
        (expm1, 0x4039000000000000, 0x4230C3D3920862C9), // expm1(25.0) = 72004899336.38588
        (expm1, 0x4044000000000000, 0x438A220D397972EA), // expm1(40.0) = 2.3538526683701997e+17
        (expm1, 0xC044000000000000, 0xBFF0000000000000), // expm1(-40.0) = -1.0
        (ln, 0x3FE0000000000000, 0xBFE62E42FEFA39EF), // ln(0.5) = -0.6931471805599453
        (ln, 0x4000000000000000, 0x3FE62E42FEFA39EF), // ln(2.0) = 0.6931471805599453
        (ln, 0x4010000000000000, 0x3FF62E42FEFA39EF), // ln(4.0) = 1.3862943611198906
        (ln, 0x4024000000000000, 0x40026BB1BBB55516), // ln(10.0) = 2.302585092994046
        (ln, 0x3FB999999999999A, 0xC0026BB1BBB55515), // ln(0.1) = -2.3025850929940455
        (ln, 0x3F50624DD2F1A9FC, 0xC01BA18A998FFFA0), // ln(0.001) = -6.907755278982137
        (ln, 0x3FF8000000000000, 0x3FD9F323ECBF984C), // ln(1.5) = 0.4054651081081644
        (ln, 0x3FEFFFFFFAA19C47, 0xBE45798EE5CD2B2A), // ln(0.99999999) = -1.0000000100247594e-08
        (ln, 0x3D3A56E0C2AC7F75, 0xC03E000000000000), // ln(9.357622968840175e-14) = -30.0
        (ln, 0x403A0C868730403A, 0x400A146E9D553717), // ln(26.048927735595704) = 3.2599766055708517
        (ln, 0x42A370470AEC28ED, 0x403E000000000000), // ln(10686474581524.463) = 30.0
        (ln, 0x0000000000000001, 0xC0874385446D71C3), // ln(5e-324) = -744.4400719213812
    ];

    #[test]
    fn known_answers() {
        for &(f, x, want) in KNOWN_ANSWERS {
            let x = f64::from_bits(x);
            let got = f(x).to_bits();
            assert_eq!(got, want, "{x:e}: got {got:#018X}, want {want:#018X}");
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(-746.0), 0.0);
        assert_eq!(expm1(0.0).to_bits(), 0);
        assert_eq!(expm1(-0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(expm1(f64::NEG_INFINITY), -1.0);
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan() && exp(f64::NAN).is_nan() && expm1(f64::NAN).is_nan());
    }
}
