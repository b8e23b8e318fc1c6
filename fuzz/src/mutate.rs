//! A small deterministic mutator for the smoke test: byte flips, interesting bytes, token
//! insertion, deletion, duplication and splicing between seeds, stacked a few at a time.
//! It is no substitute for AFL++'s coverage feedback, only a quick net that CI can afford.

/// Tokens that steer the parsers: JSON, YAML, Jinja, compound targets, PEM.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"\n",
    b"\r",
    b"\t",
    b" ",
    b"\x00",
    b"\xff",
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"{#",
    b"#}",
    b"|json",
    b"|yaml",
    b"|safe",
    b"data",
    b"tag",
    b"- ",
    b": ",
    b" #",
    b"&a",
    b"*a",
    b"!!",
    b"---",
    b"...",
    b"'",
    b"\"type\":",
    b"\"cmd\":",
    b"G@",
    b"E@",
    b"L@",
    b"P@",
    b"not ",
    b" and ",
    b" or ",
    b"( ",
    b" )",
    b"*",
    b"?",
    b"[!",
    b"salt/",
    b"@@",
    b"-----BEGIN PUBLIC KEY-----\n",
    b"\xe2\x80\xa8",
    b"\xc2\x85",
];

/// xorshift64*: reproducible from its seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A mutant of `base`, with `others` as splice material; at most `max_len` bytes.
pub fn mutate(rng: &mut Rng, base: &[u8], others: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = [0, 0x7f, 0x80, 0xff, b'"', b'\\', b'\n', b'{'][rng.below(8)];
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 if at < out.len() => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let piece = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, piece);
            }
            5 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => out.insert(at, rng.next_u64() as u8),
        }
    }
    out.truncate(max_len);
    out
}
