//! `memcpy` and `memmove` for the static x86_64 musl binaries: one `rep movsb` each.
//!
//! musl's x86_64 `memcpy` moves the unaligned head and the tail a byte at a time (`movsb`
//! in a loop) around a `rep movsq`; nearly every copy Halite makes is a small one of a
//! variable length (a string pushed, a frame appended, a value cloned), which LLVM leaves
//! to `memcpy`. In the static master musl's `memcpy` was 20% of the CPU of a `test.ping`
//! to 10,000 minions (perf); a glibc build of the same code, with its vector `memcpy`,
//! took a quarter less CPU in the master and half in the CLI. On processors with fast
//! strings (`erms`, and `fsrm` for short copies: every x86_64 server of the last decade has
//! the first) a single `rep movsb` is what glibc itself picks past a few hundred bytes, and
//! costs a few cycles below that.
//!
//! The symbols are defined only in musl builds, where the linker then takes them instead of
//! libc's (`libc.a`'s `memcpy.o` and `memmove.o` are not pulled in: musl's `memmove` jumps
//! into its `memcpy`, so both are replaced). Everything in the binary (Rust, libsodium,
//! mimalloc, musl itself) calls these. The copies are plain functions on every x86_64
//! target, so the tests (glibc) run the same instructions.

/// Copies `n` bytes from `src` to `dst`, lowest address first.
///
/// # Safety
/// As `memcpy`: both ranges valid for `n` bytes, and `dst` not above `src` inside it
/// (`dst <= src` or no overlap).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn copy_forward(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's; the ABI has the direction flag clear on entry.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `n` bytes from `src` to `dst`, highest address first (for `dst` above `src`
/// inside it).
///
/// # Safety
/// Both ranges valid for `n` bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn copy_backward(dst: *mut u8, src: *const u8, n: usize) {
    if n == 0 {
        return;
    }
    // SAFETY: the caller's; the last byte of each range is in it (n > 0). The direction
    // flag is set for this one instruction and cleared again, as the ABI wants it.
    unsafe {
        core::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack)
        );
    }
}

/// `memmove`'s choice: forward unless `dst` lies inside `src`'s bytes after its start.
///
/// # Safety
/// Both ranges valid for `n` bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's.
    unsafe {
        match (dst as usize).wrapping_sub(src as usize) >= n {
            true => copy_forward(dst, src, n),
            false => copy_backward(dst, src, n),
        }
    }
}

/// # Safety
/// As C's `memcpy`.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's.
    unsafe { copy_forward(dst, src, n) };
    dst
}

/// # Safety
/// As C's `memmove`.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's.
    unsafe { copy_overlapping(dst, src, n) };
    dst
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Every length to 300 and some long ones, at every alignment to 16, apart and
    /// overlapping either way: the bytes come out as `copy_within` leaves them.
    #[test]
    fn copies_as_std_does() {
        let pattern: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let lens: Vec<usize> = (0..300).chain([511, 512, 513, 4095, 4096, 4097, 9000]).collect();
        for &n in &lens {
            for a in 0..16 {
                for b in 0..16 {
                    // Apart.
                    let src = &pattern[a..a + n];
                    let mut dst = vec![0xAAu8; n + 32];
                    // SAFETY: both ranges hold n bytes.
                    unsafe { copy_forward(dst.as_mut_ptr().add(b), src.as_ptr(), n) };
                    assert_eq!(&dst[b..b + n], src, "forward n={n} a={a} b={b}");
                    assert!(dst[..b].iter().chain(&dst[b + n..]).all(|&x| x == 0xAA));
                    // Overlapping, either way, in one buffer.
                    for (from, to) in [(a, b), (b, a), (a, a + b + 1), (a + b + 1, a)] {
                        let mut want = pattern[..n + 40].to_vec();
                        want.copy_within(from..from + n, to);
                        let mut got = pattern[..n + 40].to_vec();
                        let p = got.as_mut_ptr();
                        // SAFETY: both ranges are inside `got` (n + 40 bytes).
                        unsafe { copy_overlapping(p.add(to), p.add(from), n) };
                        assert_eq!(got, want, "overlapping n={n} from={from} to={to}");
                    }
                }
            }
        }
    }
}
