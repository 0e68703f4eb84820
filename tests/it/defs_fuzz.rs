//! A seeded fuzz of definitions: the starter space's files mutated at random (bytes, tokens of
//! the query language and of YAML, long repetitions, bytes that are not UTF-8) and fed to
//! `cohort validate`. Whatever the input, validate must end with 0 or 2 (never a signal such
//! as a stack overflow), within a few seconds, with every error at a file:line:col and a
//! bounded amount of output. `COHORT_FUZZ_SEED` and `COHORT_FUZZ_CASES` replay or widen it.

use std::path::Path;
use std::time::{Duration, Instant};

use cohort::spec::init_files;

use crate::defs_limits::{clip, cohort, errors_without_position, write_starter};

/// xorshift64*: a tiny seeded generator, so that a failing case can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces that break definitions in the ways people (and editors) do.
const FRAGMENTS: &[&[u8]] = &[
    b"(",
    b")",
    b"((",
    b"))",
    b" AND ",
    b" OR ",
    b"NOT ",
    b"ANY ",
    b"ALL ",
    b"'",
    b"\"",
    b":",
    b": ",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\n",
    b"\n  ",
    b"\t",
    b"#",
    b",",
    b".",
    b"event('X')",
    b".where(",
    b".within(30 days)",
    b".within(parent: 2 days)",
    b".count()",
    b".unique(property('x'))",
    b"trait('total_revenue')",
    b"trait('big_spenders')",
    b"property('revenue')",
    b"property(parent: 'x')",
    b" >= ",
    b" = ",
    b" one_of ",
    b"\\",
    b"&a ",
    b"*a",
    b"!!str ",
    b"---\n",
    b"~",
    b"null",
    b"1e309",
    b"-1",
    b"99999999999999999999",
    b"\0",
    "é".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{2018}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"colour: red\n",
    b"destinations: [nowhere]\n",
    b"query: \"\"\n",
    b"type: accounts\n",
    b"${X}",
    b"SELECT ",
    b"; DROP TABLE web",
    b"WITH RECURSIVE r AS (SELECT 1) ",
    b"|\n  ",
    b">\n  ",
];

/// Repeat counts for the long-input mutation: the sizes that used to overflow or flood.
const REPEATS: &[usize] = &[2, 10, 100, 1_000, 3_000, 10_000];

fn random_pos(rng: &mut Rng, text: &[u8]) -> usize {
    rng.below(text.len() + 1)
}

fn line_bounds(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// One random edit of `text`.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>) {
    match rng.below(9) {
        0 | 1 => {
            let at = random_pos(rng, text);
            let f = rng.pick(FRAGMENTS);
            text.splice(at..at, f.iter().copied());
        }
        2 => {
            let at = random_pos(rng, text);
            let f = rng.pick(FRAGMENTS);
            let n = *rng.pick(REPEATS);
            let piece: Vec<u8> = f.repeat(n);
            text.splice(at..at, piece);
        }
        3 => {
            let at = random_pos(rng, text);
            let end = (at + 1 + rng.below(20)).min(text.len());
            if at < end {
                text.drain(at..end);
            }
        }
        4 => {
            if !text.is_empty() {
                let at = rng.below(text.len());
                text[at] = rng.next() as u8;
            }
        }
        5 | 6 => {
            let lines = line_bounds(text);
            if lines.is_empty() {
                return;
            }
            let (s, e) = *rng.pick(&lines);
            if rng.below(2) == 0 {
                let line = text[s..e].to_vec();
                text.splice(e..e, line);
            } else {
                text.drain(s..e);
            }
        }
        7 => {
            let lines = line_bounds(text);
            if lines.len() < 2 {
                return;
            }
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            let (a, b) = (a.min(b), a.max(b));
            if a == b {
                return;
            }
            let mut parts: Vec<Vec<u8>> =
                lines.iter().map(|(s, e)| text[*s..*e].to_vec()).collect();
            parts.swap(a, b);
            *text = parts.concat();
        }
        _ => {
            let at = random_pos(rng, text);
            text.truncate(at);
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_starter_spaces_never_crash_validate() {
    let seed = env_u64("COHORT_FUZZ_SEED", 0x5EED_C0DE);
    let cases = env_u64("COHORT_FUZZ_CASES", 300);
    // The cases stop early past this much time, so CI stays bounded on a slow machine.
    let budget = Duration::from_secs(env_u64("COHORT_FUZZ_SECONDS", 50));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("space");
    // A source folder that opens, so that an unmutated space is valid.
    std::fs::create_dir_all(dir.join("data/events")).unwrap();
    let files: Vec<&str> = init_files().into_iter().map(|(rel, _)| rel).collect();
    let started = Instant::now();
    let mut rng = Rng(seed | 1);
    let (mut ran, mut invalid) = (0, 0);
    for case in 0..cases {
        if started.elapsed() > budget {
            break;
        }
        reset(&dir);
        let mut changed = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let rel = *rng.pick(&files);
            let path = dir.join(rel);
            let mut text = std::fs::read(&path).unwrap();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut text);
            }
            std::fs::write(&path, &text).unwrap();
            changed.push(rel);
        }
        let o = cohort(
            &["validate", dir.to_str().unwrap()],
            Duration::from_secs(15),
        );
        ran += 1;
        let context = || {
            let shown: Vec<String> = changed
                .iter()
                .map(|rel| {
                    let text = std::fs::read(dir.join(rel)).unwrap();
                    format!(
                        "--- {rel}\n{}",
                        clip(&String::from_utf8_lossy(&text), 1_500)
                    )
                })
                .collect();
            format!(
                "case {case} of seed {seed} (COHORT_FUZZ_SEED={seed}):\n{}\nstderr:\n{}",
                shown.join("\n"),
                clip(&o.stderr, 3_000)
            )
        };
        assert!(
            matches!(o.code, Some(0) | Some(2)),
            "exit {:?}; {}",
            o.code,
            context()
        );
        assert!(
            o.stderr_bytes < 256 * 1024,
            "{} bytes of stderr; {}",
            o.stderr_bytes,
            context()
        );
        let unplaced = errors_without_position(&o.stderr);
        assert!(
            unplaced.is_empty(),
            "errors without a position: {unplaced:?}; {}",
            context()
        );
        if o.code == Some(2) {
            invalid += 1;
        }
    }
    assert!(ran >= 50, "only {ran} cases ran in {budget:?}");
    assert!(
        invalid > ran / 4,
        "the mutations rarely broke anything: {invalid} of {ran}"
    );
}

/// Puts the starter files back (the sample data stays).
fn reset(dir: &Path) {
    for sub in ["traits", "queries", "audiences", "destinations"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    write_starter(dir);
}
