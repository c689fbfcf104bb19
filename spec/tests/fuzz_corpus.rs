//! The job-spec parser under mutated input, as plain `cargo test`: every
//! seed of `fuzz/corpus/job_spec/` (the documented examples) and a bounded,
//! seeded run of byte mutations of them (flip, insert, delete, splice,
//! duplicate a slice) go through `parse_job_spec` as JSON, YAML and
//! guessed. The parser must never panic, and every refusal must name at
//! least one field with a reason. A stand-in for a libFuzzer run (no
//! coverage guidance); `OCEAN_FUZZ_ITERATIONS` lengthens it by hand.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use ocean_spec::{parse_job_spec, Format};

/// xorshift64*: a seeded generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/job_spec");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus/job_spec")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "the corpus holds the documented examples");
    seeds
}

/// Bytes that often matter to JSON and YAML parsers.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b"-",
    b"\n",
    b"  ",
    b"null",
    b"true",
    b"1e999",
    b"-1",
    b"18446744073709551616",
    b"&a",
    b"*a",
    b"!!binary",
    b"\xff",
    b"\\u0000",
    b"~",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, t.iter().copied());
            }
            2 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let end = (from + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ if !input.is_empty() => {
                let from = rng.below(input.len());
                let end = (from + rng.below(32)).min(input.len());
                let slice = input[from..end].to_vec();
                input.splice(at..at, slice);
            }
            _ => {}
        }
    }
}

/// Parses `input` every way; panics (with the input) on a parser panic or
/// a refusal that names no field.
fn check(input: &[u8]) {
    for format in [Format::Json, Format::Yaml, Format::Auto] {
        let outcome = catch_unwind(AssertUnwindSafe(|| parse_job_spec(input, format)));
        match outcome {
            Err(_) => panic!(
                "parse_job_spec panicked ({format:?}) on {:?}",
                String::from_utf8_lossy(input)
            ),
            Ok(Err(e)) => assert!(
                !e.errors.is_empty() && e.errors.iter().all(|f| !f.field.is_empty()),
                "a refusal names no field ({format:?}) on {:?}: {e}",
                String::from_utf8_lossy(input)
            ),
            Ok(Ok(_)) => {}
        }
    }
}

#[test]
fn the_seeds_parse_and_mutations_never_panic() {
    let seeds = corpus();
    for seed in &seeds {
        check(seed);
    }
    let iterations: usize = std::env::var("OCEAN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(0x0CEA_2022);
    for _ in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut input);
        check(&input);
    }
}
