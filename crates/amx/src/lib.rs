//! Matrix multiplication in bf16 with f32 accumulation, `C = A · B`, `A` the activations rounded
//! to bf16, `B` weights packed once — on Intel AMX tiles (Xeon "Sapphire Rapids" and later) or
//! with AVX-512 BF16 dot products (AMD Zen 4 and later, and those Xeons).
//!
//! Why it exists: the linear layers of all-MiniLM-L6-v2 cost 1.36 GFLOP for a 64-token text.
//! One core's AVX-512 f32 FMA peak is ~130 GFLOPS on a Sapphire Rapids core and ~110 on a Zen 4
//! one, so f32 cannot embed such a text in 10 ms however good the kernel. An AMX tile multiply
//! does 16×16×32 products per instruction: ~370 GFLOPS on these shapes on one core, measured
//! (`examples/amx_gemm.rs`). Where there are no tiles, `VDPBF16PS` does 32 products per
//! instruction; on Zen 4 it issues as fast as an f32 FMA of the same width, which does 16, so
//! bf16 doubles the arithmetic rate there (on Sapphire Rapids it runs at half the FMA rate and
//! wins nothing, so tiles are preferred). Rounding the inputs to bf16 keeps the embeddings at
//! cosine ≥ 0.9999 of the f32 model (checked by the encoder's tests).
//!
//! AMX has no intrinsics on stable Rust and no maintained crate, so this is the workspace's one
//! crate with `unsafe`: a permission syscall, inline assembly, and the AVX-512 intrinsics' loads
//! and stores. It must never run an instruction the CPU or kernel has not granted
//! ([`Bf16Matmul::detect`] and [`Bf16Matmul::with_engine`] are the only ways to get the token
//! that [`Bf16Matmul::matmul`] needs) nor touch memory outside the slices it is given (every
//! shape is checked before any kernel runs).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// Rows of `A` (and `C`) come in multiples of this (one tile is 16 rows).
pub const ROW_MULTIPLE: usize = 16;
/// `k` (inner) and `n` (output) dimensions must be multiples of this (a tile is 32 bf16 wide;
/// output columns are computed 32 at a time).
pub const DIM_MULTIPLE: usize = 32;

/// Which instructions do the multiplying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// AMX tile multiplies (`TDPBF16PS`, 16×16×32 products per instruction): Intel Xeon
    /// "Sapphire Rapids" and later, Linux ≥ 5.16.
    Tiles,
    /// AVX-512 BF16 dot products (`VDPBF16PS`, 16×2 products per instruction) in vector
    /// registers: AMD Zen 4 and later, Intel Cooper Lake and Sapphire Rapids. On Zen 4 one such
    /// instruction per cycle does twice the arithmetic of an f32 FMA.
    Avx512Bf16,
}

impl Engine {
    /// `amx-bf16` or `avx512-bf16`: how reports and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Tiles => "amx-bf16",
            Engine::Avx512Bf16 => "avx512-bf16",
        }
    }
}

/// Proof that this process may run the bf16 instructions of one [`Engine`]. Obtained from
/// [`Bf16Matmul::detect`] or [`Bf16Matmul::with_engine`].
#[derive(Debug, Clone, Copy)]
pub struct Bf16Matmul {
    engine: Engine,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(String);

/// Weights `W` (`k` inputs × `n` outputs) in the layout a tile multiply reads: 16-column
/// panels; in a panel, row `p` holds the bf16 pairs `(W[2p][j], W[2p+1][j])` of its 16 columns.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    data: Aligned<u32>,
}

impl PackedWeights {
    /// `w` is `k × n`, row-major (one row per input feature).
    pub fn pack(w: &[f32], k: usize, n: usize) -> Result<Self, ShapeError> {
        if k == 0 || n == 0 || !k.is_multiple_of(DIM_MULTIPLE) || !n.is_multiple_of(DIM_MULTIPLE) {
            return Err(ShapeError(format!(
                "a {k}×{n} weight matrix: both dimensions must be positive multiples of \
                 {DIM_MULTIPLE}"
            )));
        }
        if w.len() != k * n {
            return Err(ShapeError(format!(
                "a {k}×{n} weight matrix needs {} values, got {}",
                k * n,
                w.len()
            )));
        }
        let pairs = k / 2;
        let mut data = Aligned::zeroed(n * pairs);
        for (panel, out) in data.chunks_exact_mut(pairs * 16).enumerate() {
            for (p, row) in out.chunks_exact_mut(16).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    let col = panel * 16 + j;
                    let lo = u32::from(bf16(w[2 * p * n + col]));
                    let hi = u32::from(bf16(w[(2 * p + 1) * n + col]));
                    *v = lo | (hi << 16);
                }
            }
        }
        Ok(Self { k, n, data })
    }

    /// Inputs.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Outputs.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// Element types an [`Aligned`] buffer can hold: every bit pattern is a value, and the size
/// divides 64.
pub trait Plain: Copy + sealed::Sealed {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for f32 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for f32 {}
}

/// A zero-initialised buffer that starts on a 64-byte boundary. Tile loads and stores read
/// 64-byte rows: from an unaligned buffer every row spans two cache lines and a tile load takes
/// ~6× as long (measured 24 ns vs 3.7 ns from L1), which made the matmuls load-bound. Keep
/// matmul operands (activations, outputs) in these; with `k` and `n` multiples of 32 every row
/// then starts on a line too.
#[derive(Clone)]
pub struct Aligned<T: Plain> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

impl<T: Plain> Aligned<T> {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let mut a = Self {
            lines: Vec::new(),
            len: 0,
            _t: PhantomData,
        };
        a.grow(len);
        a
    }

    /// Make it at least `len` long; new elements are zero, existing ones kept.
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            let bytes = len * size_of::<T>();
            self.lines.resize(bytes.div_ceil(64), Line([0; 64]));
            self.len = len;
        }
    }
}

impl<T: Plain> std::fmt::Debug for Aligned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aligned({} values)", self.len)
    }
}

impl<T: Plain> Default for Aligned<T> {
    fn default() -> Self {
        Self::zeroed(0)
    }
}

impl<T: Plain> Deref for Aligned<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `lines` holds at least `len · size_of::<T>()` initialised bytes (zeroed on
        // growth, then only written as `T`s); the start is 64-aligned, enough for any `Plain`
        // type; every bit pattern is a valid `T`; the borrow of `self` covers the slice.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, with the unique borrow of `self` making the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as its bits.
#[inline(always)]
pub fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        0x7fc0
    } else {
        rounded
    }
}

/// The f32 a bf16 stands for.
#[inline(always)]
pub fn f32_from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

impl Bf16Matmul {
    /// The fastest engine this machine allows: AMX tiles, else AVX-512 BF16; `None` if neither.
    pub fn detect() -> Option<Self> {
        Self::with_engine(Engine::Tiles).or_else(|| Self::with_engine(Engine::Avx512Bf16))
    }

    /// The token for `engine` if this process may use it: for [`Engine::Tiles`], the CPU has
    /// AMX-TILE and AMX-BF16 and the kernel grants this process the tile state (Linux ≥ 5.16,
    /// `arch_prctl(ARCH_REQ_XCOMP_PERM)`); for [`Engine::Avx512Bf16`], the CPU has AVX-512F and
    /// AVX512-BF16 and the OS saves the vector state. Either way a known product must come out
    /// right. Checked once per process.
    pub fn with_engine(engine: Engine) -> Option<Self> {
        static TILES: OnceLock<bool> = OnceLock::new();
        static AVX512: OnceLock<bool> = OnceLock::new();
        let (cell, allowed): (_, fn() -> bool) = match engine {
            Engine::Tiles => (&TILES, imp::enable),
            Engine::Avx512Bf16 => (&AVX512, imp::avx512_usable),
        };
        let usable = *cell.get_or_init(|| allowed() && self_test(engine));
        usable.then_some(Self { engine })
    }

    /// The engine this token runs.
    pub fn engine(self) -> Engine {
        self.engine
    }

    /// `c[..rows × n] = a · w`: `a` is `rows × k` bf16 bits, row-major; `c` is `rows × n`,
    /// row-major. `rows` must be a multiple of [`ROW_MULTIPLE`] (pad with zero rows).
    ///
    /// # Panics
    /// If the shapes disagree (a bug in the caller).
    pub fn matmul(self, a: &[u16], rows: usize, w: &PackedWeights, c: &mut [f32]) {
        check(a, rows, w);
        assert!(
            c.len() >= rows * w.n,
            "C holds {} values, {rows}×{} needed",
            c.len(),
            w.n
        );
        imp::matmul(self.engine, a, rows, w, c, true, &mut |_, _| {});
    }

    /// `a · w` by blocks of [`BLOCK_ROWS`] rows (fewer for the last): each block is computed
    /// into `block` (at least `BLOCK_ROWS × n` values) and handed to `done(first_row, rows)`
    /// while it is still in cache — for an epilogue (bias, activation, residual, norm) that
    /// would otherwise stream the whole product through memory again.
    ///
    /// # Panics
    /// If the shapes disagree (a bug in the caller).
    pub fn matmul_by_rows(
        self,
        a: &[u16],
        rows: usize,
        w: &PackedWeights,
        block: &mut [f32],
        mut done: impl FnMut(usize, &mut [f32]),
    ) {
        check(a, rows, w);
        assert!(
            block.len() >= BLOCK_ROWS * w.n,
            "the block holds {} values, {BLOCK_ROWS}×{} needed",
            block.len(),
            w.n
        );
        imp::matmul(self.engine, a, rows, w, block, false, &mut done);
    }
}

/// Rows of the product computed together (two tiles high); [`Bf16Matmul::matmul_by_rows`]
/// hands them over in blocks of this many.
pub const BLOCK_ROWS: usize = 32;

/// A 16×32 by 32×32 product of small integers (exact in bf16 and f32) must come out exact.
/// Called only once the engine's instructions are known to be allowed.
fn self_test(engine: Engine) -> bool {
    let (m, k, n) = (16, 32, 32);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
    let Ok(packed) = PackedWeights::pack(&w, k, n) else {
        return false;
    };
    let a16: Vec<u16> = a.iter().map(|&x| bf16(x)).collect();
    let mut c = vec![f32::NAN; m * n];
    imp::matmul(engine, &a16, m, &packed, &mut c, true, &mut |_, _| {});
    (0..m).all(|i| {
        (0..n).all(|j| {
            let want: f32 = (0..k).map(|p| a[i * k + p] * w[p * n + j]).sum();
            c[i * n + j] == want
        })
    })
}

fn check(a: &[u16], rows: usize, w: &PackedWeights) {
    assert!(
        rows.is_multiple_of(ROW_MULTIPLE),
        "{rows} rows: pad to a multiple of {ROW_MULTIPLE}"
    );
    assert_eq!(a.len(), rows * w.k, "A is {rows}×{}", w.k);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::{avx512, Engine, PackedWeights};
    use std::arch::asm;

    /// `ldtilecfg`'s 64-byte operand: palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
        reserved2: [u8; 16],
    }

    static CONFIG: TileConfig = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
        reserved2: [0; 16],
    };

    /// Weights are prefetched this many bytes (four K steps) ahead of the tile loads: each
    /// weight is read from memory once per pass (21 MB of bf16 for all-MiniLM-L6-v2), and
    /// without the hint the tile loads wait on it (p50 of a forward pass's matmuls 6.5 → 5.9 ms
    /// on a busy machine, `examples/amx_gemm.rs`). Prefetches never fault, so reading past the
    /// end of a panel is harmless.
    const PREFETCH_AHEAD: usize = 4096;

    const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_ulong = 18;

    /// Whether this CPU has AMX-TILE and AMX-BF16 and the kernel grants this process the tile
    /// state (the caller then runs the self-test).
    pub(super) fn enable() -> bool {
        // CPUID leaf 7 (structured extended features), EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        // CPUID exists on every x86_64 CPU; leaf 0 gives the highest leaf we may ask.
        let max_leaf = std::arch::x86_64::__cpuid(0).eax;
        if max_leaf < 7 {
            return false;
        }
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
            return false;
        }
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) takes two integers, touches
        // no memory of ours, and only widens the set of xsave features this process may use.
        let granted = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        granted == 0
    }

    /// Whether this CPU has AVX-512F and AVX512-BF16 and the OS saves the zmm state (the
    /// standard library's detection checks XCR0 too).
    pub(super) fn avx512_usable() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }

    /// Callers have checked: `rows % 16 == 0`, `a.len() == rows × k`, `k` and `n` positive
    /// multiples of 32 (by construction of `PackedWeights`), `c` holds `rows × n` values
    /// (`whole`: row `r` of the product goes to row `r` of `c`) or 32 × n (each block of rows
    /// goes to the top of `c`), and `engine` is allowed (a `Bf16Matmul` for it exists, or its
    /// detection is running the self-test after checking the CPU and kernel).
    pub(super) fn matmul(
        engine: Engine,
        a: &[u16],
        rows: usize,
        w: &PackedWeights,
        c: &mut [f32],
        whole: bool,
        done: &mut dyn FnMut(usize, &mut [f32]),
    ) {
        let (k, n) = (w.k, w.n);
        let panel = k / 2 * 16;
        // Rows outermost, 32 at a time: their activations (32 × k bf16) stay in L1 while every
        // weight panel streams past them (prefetched), and each block of the product is
        // complete — ready for the caller's epilogue — before the next starts. Measured on
        // 1024 rows with AMX: 668 GFLOPS this way, 132–180 with 128–256-row blocks swept per
        // weight panel (their activations and outputs fall out of L1 and the loads saturate L2).
        let mut mb = 0;
        while mb < rows {
            let height = if mb + 32 <= rows { 32 } else { 16 };
            let a_rows = &a[mb * k..(mb + height) * k];
            let base = if whole { mb * n } else { 0 };
            let c_rows = &mut c[base..base + height * n];
            match engine {
                Engine::Tiles => tiles_block(a_rows, height, k, &w.data, panel, c_rows, n),
                Engine::Avx512Bf16 => {
                    // SAFETY: the engine is allowed, so the CPU has AVX-512F and AVX512-BF16
                    // and the OS saves their state (`avx512_usable`).
                    unsafe { avx512::block(a_rows, height, k, &w.data, c_rows, n) }
                }
            }
            done(mb, c_rows);
            mb += height;
        }
        if engine == Engine::Tiles {
            // SAFETY: releases the tile state; no memory is touched.
            unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
        }
    }

    /// `c` (`height` rows × n) = `a` (`height` rows × k) · the weights, on AMX tiles.
    fn tiles_block(
        a_rows: &[u16],
        height: usize,
        k: usize,
        data: &[u32],
        panel: usize,
        c: &mut [f32],
        n: usize,
    ) {
        // Loaded per block: `done` may have run another product, which released the tiles.
        // SAFETY: `ldtilecfg` reads the 64-byte, 64-aligned static config; AMX is granted.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly, preserves_flags));
        };
        for nb in (0..n).step_by(32) {
            // Two 16-column panels, each `k/2` rows of 64 bytes.
            let b = &data[nb / 16 * panel..(nb / 16 + 2) * panel];
            // The output block: `height` rows from column `nb`, 32 wide, row stride n.
            let c_block = &mut c[nb..(height - 1) * n + nb + 32];
            if height == 32 {
                block_32x32(a_rows, k, b, panel, c_block, n);
            } else {
                block_16x32(a_rows, k, b, panel, c_block, n);
            }
        }
    }

    /// `c` (32 rows × 32 columns at row stride `ldc`) = `a` (32 rows × k) · `b` (two panels).
    fn block_32x32(a: &[u16], k: usize, b: &[u32], panel: usize, c: &mut [f32], ldc: usize) {
        debug_assert!(a.len() == 32 * k && b.len() == 2 * panel && c.len() == 31 * ldc + 32);
        let a0 = a.as_ptr();
        let b0 = b.as_ptr();
        let c0 = c.as_mut_ptr();
        // SAFETY: tiles are configured (16 rows × 64 bytes). Each step reads A rows 0–15 and
        // 16–31 at byte offset 64·step of each row (row stride 2k bytes; step < k/32, so within
        // the 32·k values of `a`), and rows 16·step..16·step+16 (64 bytes each) of both panels
        // (`panel` = k/2·16 u32 each, within `b`). The four stores write 16 rows × 16 f32 at
        // rows 0–15/16–31, columns 0–15/16–31, row stride `ldc` f32: the last byte written is
        // element 31·ldc + 31, within `c`. tmm0–7 are declared clobbered. The prefetches are
        // hints, never faults, and may point past `b`.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tileloadd tmm5, [{a1} + {lda}*1]",
                "tileloadd tmm7, [{b1} + {ldb}*1]",
                "prefetcht0 [{b0} + {pd} + 0]",
                "prefetcht0 [{b1} + {pd} + 0]",
                "prefetcht0 [{b0} + {pd} + 64]",
                "prefetcht0 [{b1} + {pd} + 64]",
                "prefetcht0 [{b0} + {pd} + 128]",
                "prefetcht0 [{b1} + {pd} + 128]",
                "prefetcht0 [{b0} + {pd} + 192]",
                "prefetcht0 [{b1} + {pd} + 192]",
                "prefetcht0 [{b0} + {pd} + 256]",
                "prefetcht0 [{b1} + {pd} + 256]",
                "prefetcht0 [{b0} + {pd} + 320]",
                "prefetcht0 [{b1} + {pd} + 320]",
                "prefetcht0 [{b0} + {pd} + 384]",
                "prefetcht0 [{b1} + {pd} + 384]",
                "prefetcht0 [{b0} + {pd} + 448]",
                "prefetcht0 [{b1} + {pd} + 448]",
                "prefetcht0 [{b0} + {pd} + 512]",
                "prefetcht0 [{b1} + {pd} + 512]",
                "prefetcht0 [{b0} + {pd} + 576]",
                "prefetcht0 [{b1} + {pd} + 576]",
                "prefetcht0 [{b0} + {pd} + 640]",
                "prefetcht0 [{b1} + {pd} + 640]",
                "prefetcht0 [{b0} + {pd} + 704]",
                "prefetcht0 [{b1} + {pd} + 704]",
                "prefetcht0 [{b0} + {pd} + 768]",
                "prefetcht0 [{b1} + {pd} + 768]",
                "prefetcht0 [{b0} + {pd} + 832]",
                "prefetcht0 [{b1} + {pd} + 832]",
                "prefetcht0 [{b0} + {pd} + 896]",
                "prefetcht0 [{b1} + {pd} + 896]",
                "prefetcht0 [{b0} + {pd} + 960]",
                "prefetcht0 [{b1} + {pd} + 960]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 64",
                "add {a1}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{c0} + {ldc}*1], tmm0",
                "tilestored [{c1} + {ldc}*1], tmm1",
                "tilestored [{c2} + {ldc}*1], tmm2",
                "tilestored [{c3} + {ldc}*1], tmm3",
                a0 = inout(reg) a0 => _,
                a1 = inout(reg) a0.add(16 * k) => _,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b0.add(panel) => _,
                steps = inout(reg) k / 32 => _,
                lda = in(reg) 2 * k,
                ldb = in(reg) 64usize,
                ldc = in(reg) 4 * ldc,
                c0 = in(reg) c0,
                c1 = in(reg) c0.add(16),
                c2 = in(reg) c0.add(16 * ldc),
                c3 = in(reg) c0.add(16 * ldc + 16),
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                pd = const PREFETCH_AHEAD,
                options(nostack),
            );
        }
    }

    /// As [`block_32x32`] with 16 rows (the tail of an odd number of 16-row groups).
    fn block_16x32(a: &[u16], k: usize, b: &[u32], panel: usize, c: &mut [f32], ldc: usize) {
        debug_assert!(a.len() == 16 * k && b.len() == 2 * panel && c.len() == 15 * ldc + 32);
        let a0 = a.as_ptr();
        let b0 = b.as_ptr();
        let c0 = c.as_mut_ptr();
        // SAFETY: as in `block_32x32` with A rows 0–15 only and C rows 0–15: the last element
        // written is 15·ldc + 31, within `c`.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "2:",
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tileloadd tmm7, [{b1} + {ldb}*1]",
                "prefetcht0 [{b0} + {pd} + 0]",
                "prefetcht0 [{b1} + {pd} + 0]",
                "prefetcht0 [{b0} + {pd} + 64]",
                "prefetcht0 [{b1} + {pd} + 64]",
                "prefetcht0 [{b0} + {pd} + 128]",
                "prefetcht0 [{b1} + {pd} + 128]",
                "prefetcht0 [{b0} + {pd} + 192]",
                "prefetcht0 [{b1} + {pd} + 192]",
                "prefetcht0 [{b0} + {pd} + 256]",
                "prefetcht0 [{b1} + {pd} + 256]",
                "prefetcht0 [{b0} + {pd} + 320]",
                "prefetcht0 [{b1} + {pd} + 320]",
                "prefetcht0 [{b0} + {pd} + 384]",
                "prefetcht0 [{b1} + {pd} + 384]",
                "prefetcht0 [{b0} + {pd} + 448]",
                "prefetcht0 [{b1} + {pd} + 448]",
                "prefetcht0 [{b0} + {pd} + 512]",
                "prefetcht0 [{b1} + {pd} + 512]",
                "prefetcht0 [{b0} + {pd} + 576]",
                "prefetcht0 [{b1} + {pd} + 576]",
                "prefetcht0 [{b0} + {pd} + 640]",
                "prefetcht0 [{b1} + {pd} + 640]",
                "prefetcht0 [{b0} + {pd} + 704]",
                "prefetcht0 [{b1} + {pd} + 704]",
                "prefetcht0 [{b0} + {pd} + 768]",
                "prefetcht0 [{b1} + {pd} + 768]",
                "prefetcht0 [{b0} + {pd} + 832]",
                "prefetcht0 [{b1} + {pd} + 832]",
                "prefetcht0 [{b0} + {pd} + 896]",
                "prefetcht0 [{b1} + {pd} + 896]",
                "prefetcht0 [{b0} + {pd} + 960]",
                "prefetcht0 [{b1} + {pd} + 960]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "add {a0}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{c0} + {ldc}*1], tmm0",
                "tilestored [{c1} + {ldc}*1], tmm1",
                a0 = inout(reg) a0 => _,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b0.add(panel) => _,
                steps = inout(reg) k / 32 => _,
                lda = in(reg) 2 * k,
                ldb = in(reg) 64usize,
                ldc = in(reg) 4 * ldc,
                c0 = in(reg) c0,
                c1 = in(reg) c0.add(16),
                pd = const PREFETCH_AHEAD,
                out("tmm0") _, out("tmm1") _, out("tmm4") _, out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        }
    }
}

/// The [`Engine::Avx512Bf16`] kernel. `VDPBF16PS` multiplies 16 pairs of bf16 by 16 pairs and
/// adds each lane's two products to an f32 accumulator: exactly a row of a weight panel
/// (16 columns, one pair of inputs each) times one pair of an activation row, broadcast. A
/// register block of 8 rows × 3 panels (48 columns) keeps 24 accumulators and 3 weight vectors
/// in the 32 zmm registers; each step loads 3 weight vectors and 8 pairs for 24 dot products.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod avx512 {
    use std::arch::x86_64::{
        __m512, __m512bh, __m512i, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_set1_epi32,
        _mm512_setzero_ps, _mm512_storeu_ps,
    };

    /// Rows of a register block.
    const ROWS: usize = 8;

    /// `c` (`height` rows × n, row-major) = `a` (`height` rows × k bf16, row-major) · the packed
    /// weights `data` (n/16 panels of k/2 rows of 16 pairs).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16 and the OS must save their state. Shapes as
    /// `imp::matmul` checks them: `height` a multiple of 8, `a.len() == height · k`,
    /// `data.len() == n · k/2`, `c.len() == height · n`, `k` and `n` multiples of 32.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(
        a: &[u16],
        height: usize,
        k: usize,
        data: &[u32],
        c: &mut [f32],
        n: usize,
    ) {
        assert!(
            height.is_multiple_of(ROWS)
                && k.is_multiple_of(2)
                && n.is_multiple_of(16)
                && a.len() == height * k
                && data.len() == n * k / 2
                && c.len() == height * n,
            "avx512 block: bad shapes"
        );
        let panels = n / 16;
        let mut p0 = 0;
        // Column groups outermost: a group's weights (3 panels, 36 KB for k = 384) stay in L2
        // while the block's row groups pass over them.
        while p0 < panels {
            let width = (panels - p0).min(3);
            for r0 in (0..height).step_by(ROWS) {
                let a_rows = &a[r0 * k..(r0 + ROWS) * k];
                let c_rows = &mut c[r0 * n..(r0 + ROWS) * n];
                // SAFETY: this function's own target features; the slices hold what
                // `micro` reads and writes (asserted above: 8 rows of k, `width` panels from
                // `p0` within n/16, 8 output rows of n).
                unsafe {
                    match width {
                        3 => micro::<3>(a_rows, k, data, p0, c_rows, n),
                        2 => micro::<2>(a_rows, k, data, p0, c_rows, n),
                        _ => micro::<1>(a_rows, k, data, p0, c_rows, n),
                    }
                }
            }
            p0 += width;
        }
    }

    /// Rows 0..8 of `c`, columns `16·p0 .. 16·(p0 + P)` = `a` (8 rows × k) · panels
    /// `p0 .. p0 + P`.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16 allowed; `a.len() == 8k`, `c.len() == 8n`,
    /// `(p0 + P) · 16 ≤ n`, `data` holds n/16 panels of k/2 × 16 values.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn micro<const P: usize>(
        a: &[u16],
        k: usize,
        data: &[u32],
        p0: usize,
        c: &mut [f32],
        n: usize,
    ) {
        let pairs = k / 2;
        let panel = pairs * 16;
        debug_assert!(a.len() == ROWS * k && c.len() == ROWS * n && (p0 + P) * 16 <= n);
        debug_assert!(data.len() >= (p0 + P) * panel);
        let w = data[p0 * panel..].as_ptr();
        let x = a.as_ptr();
        let mut acc: [[__m512; P]; ROWS] = [[_mm512_setzero_ps(); P]; ROWS];
        for p in 0..pairs {
            let mut wv: [__m512bh; P] = [to_bh(_mm512_set1_epi32(0)); P];
            for (q, v) in wv.iter_mut().enumerate() {
                // SAFETY: row p (16 u32) of panel p0 + q: `(q · pairs + p) · 16 + 16 ≤ P · panel`,
                // within `data` from `p0 · panel` (contract); unaligned loads are allowed.
                *v = to_bh(unsafe { _mm512_loadu_si512(w.add(q * panel + p * 16).cast()) });
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: values 2p and 2p + 1 of row r: `r · k + 2p + 1 < 8k = a.len()`.
                let pair = unsafe {
                    u32::from(*x.add(r * k + 2 * p)) | u32::from(*x.add(r * k + 2 * p + 1)) << 16
                };
                let xv = to_bh(_mm512_set1_epi32(pair as i32));
                for (acc, wv) in row.iter_mut().zip(&wv) {
                    *acc = _mm512_dpbf16_ps(*acc, xv, *wv);
                }
            }
        }
        let out = c.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            for (q, v) in row.iter().enumerate() {
                // SAFETY: 16 f32 at row r, column 16·(p0 + q): `r · n + 16(p0 + q) + 16 ≤ 8n`.
                unsafe { _mm512_storeu_ps(out.add(r * n + 16 * (p0 + q)), *v) };
            }
        }
    }

    /// The same 512 bits seen as 32 bf16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    fn to_bh(v: __m512i) -> __m512bh {
        // SAFETY: both types are 64 bytes of plain vector data; every bit pattern is valid.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::PackedWeights;

    pub(super) fn enable() -> bool {
        false
    }

    pub(super) fn avx512_usable() -> bool {
        false
    }

    pub(super) fn matmul(
        _: super::Engine,
        _: &[u16],
        _: usize,
        _: &PackedWeights,
        _: &mut [f32],
        _: bool,
        _: &mut dyn FnMut(usize, &mut [f32]),
    ) {
        unreachable!("no engine is allowed off x86_64 Linux");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether /proc/cpuinfo lists every one of `flags` for this CPU.
    fn cpu_has(flags: &[&str]) -> bool {
        cfg!(all(target_arch = "x86_64", target_os = "linux"))
            && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
                s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
                    let have: Vec<&str> = l.split_whitespace().collect();
                    flags.iter().all(|f| have.contains(f))
                })
            })
    }

    /// The engines this machine allows; each one the CPU lists must be allowed.
    fn engines() -> Vec<Bf16Matmul> {
        [
            (Engine::Tiles, &["amx_bf16", "amx_tile"][..]),
            (Engine::Avx512Bf16, &["avx512f", "avx512_bf16"][..]),
        ]
        .into_iter()
        .filter_map(|(engine, flags)| {
            let token = Bf16Matmul::with_engine(engine);
            if token.is_none() {
                assert!(
                    !cpu_has(flags),
                    "the CPU lists {flags:?} but {engine:?} was refused (kernel or self-test)"
                );
            }
            token
        })
        .collect()
    }

    #[test]
    fn detect_prefers_tiles_then_avx512() {
        let all = engines();
        assert_eq!(
            Bf16Matmul::detect().map(Bf16Matmul::engine),
            all.first().map(|t| t.engine())
        );
    }

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16(1.0), 0x3f80);
        assert_eq!(f32_from_bf16(bf16(1.0 + 1.0 / 256.0)), 1.0); // tie, down to even
        assert_eq!(f32_from_bf16(bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0); // tie, up
        assert_eq!(f32_from_bf16(bf16(-2.5)), -2.5);
        assert!(f32_from_bf16(bf16(f32::NAN)).is_nan());
        assert_eq!(f32_from_bf16(bf16(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn aligned_buffers_start_on_a_line_and_keep_their_contents() {
        let mut a: Aligned<u16> = Aligned::zeroed(5);
        assert_eq!(&a[..], &[0; 5]);
        a[4] = 7;
        a.grow(100);
        assert_eq!(a.len(), 100);
        assert_eq!(a[4], 7);
        assert!(a[5..].iter().all(|&x| x == 0));
        assert_eq!(a.as_ptr() as usize % 64, 0);
        let f: Aligned<f32> = Aligned::zeroed(33);
        assert_eq!(f.as_ptr() as usize % 64, 0);
        assert!(Aligned::<u32>::default().is_empty());
    }

    #[test]
    fn packing_refuses_shapes_the_tiles_cannot_take() {
        assert!(PackedWeights::pack(&[0.0; 48 * 32], 48, 32).is_err());
        assert!(PackedWeights::pack(&[0.0; 32 * 40], 32, 40).is_err());
        assert!(PackedWeights::pack(&[0.0; 10], 32, 32).is_err());
        assert!(PackedWeights::pack(&[0.0; 64 * 32], 64, 32).is_ok());
    }

    /// Detection agrees with the CPU's flags; with every engine the machine has, the product
    /// equals the f32 product of the bf16-rounded inputs (up to summation order) for every
    /// row-tail and column-tail shape.
    #[test]
    fn matmul_equals_the_product_of_the_rounded_inputs() {
        for engine in engines() {
            products_are_right(engine);
        }
    }

    fn products_are_right(amx: Bf16Matmul) {
        for (rows, k, n) in [
            (16, 32, 32),
            (32, 64, 64),
            (48, 384, 96),
            (64, 384, 1152),
            (80, 1536, 64),
            (528, 96, 32),
            (32, 64, 160),
        ] {
            let a = values(rows * k, 1);
            let w = values(k * n, 2);
            let packed = PackedWeights::pack(&w, k, n).unwrap();
            let a16: Vec<u16> = a.iter().map(|&x| bf16(x)).collect();
            let mut c = vec![f32::NAN; rows * n + 5];
            amx.matmul(&a16, rows, &packed, &mut c);
            for i in 0..rows {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| {
                            f64::from(f32_from_bf16(a16[i * k + p]))
                                * f64::from(f32_from_bf16(bf16(w[p * n + j])))
                        })
                        .sum();
                    let got = f64::from(c[i * n + j]);
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{:?} {rows}×{k}×{n} at ({i}, {j}): {got} vs {want}",
                        amx.engine()
                    );
                }
            }
            assert!(
                c[rows * n..].iter().all(|x| x.is_nan()),
                "wrote past rows × n"
            );
            // By blocks of rows: the same values, every row once, in order.
            let mut block = vec![0f32; BLOCK_ROWS * n];
            let mut next = 0;
            amx.matmul_by_rows(&a16, rows, &packed, &mut block, |first, got| {
                assert_eq!(first, next);
                assert_eq!(got.len() % n, 0);
                assert_eq!(got, &c[first * n..first * n + got.len()]);
                next += got.len() / n;
            });
            assert_eq!(next, rows);
        }
        // A product inside the epilogue of another (it releases the tiles; the outer one must
        // load them again for its next block).
        let (k, n) = (64, 64);
        let w = PackedWeights::pack(&values(k * n, 3), k, n).unwrap();
        let a: Vec<u16> = values(64 * k, 4).into_iter().map(bf16).collect();
        let mut whole = vec![0f32; 64 * n];
        amx.matmul(&a, 64, &w, &mut whole);
        let mut block = vec![0f32; BLOCK_ROWS * n];
        let mut inner = vec![0f32; 16 * n];
        amx.matmul_by_rows(&a, 64, &w, &mut block, |first, got| {
            amx.matmul(&a[..16 * k], 16, &w, &mut inner);
            assert_eq!(inner, whole[..16 * n]);
            assert_eq!(got, &whole[first * n..first * n + got.len()]);
        });
    }
}
