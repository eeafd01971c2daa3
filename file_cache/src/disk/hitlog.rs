//! The hit log, `.hits` in a function's directory: 16-byte records (hit count, then saved
//! microseconds, both `u64` little-endian) that processes append when they are done, and
//! the checks that tell a log the runtime wrote from a damaged one. It knows the records'
//! format, not which function or process they count.

use crate::disk::gate;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Name of the hit log in a function's directory.
pub(crate) const HIT_LOG: &str = ".hits";

/// Most bytes of a hit log read: logs are compacted past a few kilobytes (older versions
/// of the runtime let them grow by 16 bytes a hit, a few megabytes at most in practice).
pub(crate) const MAX_HIT_LOG: u64 = 64 << 20;

/// Totals of a function's hit log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HitTotals {
    /// Hits, over every process that logged them.
    pub hits: u64,
    /// Compute time those hits did not spend.
    pub time_saved: Duration,
}

/// Appends `record` to the hit log at `log` (created if missing, private to the user; a
/// planted link there is removed first); returns the log's length after it. One `write`
/// with `O_APPEND`: records of concurrent processes never interleave.
pub(crate) fn append(log: &Path, record: &[u8; RECORD_LEN]) -> io::Result<u64> {
    let mut file = gate::open_own(log, gate::Own::Append)?;
    file.write_all(record)?;
    Ok(file.metadata()?.len())
}

/// Bytes of one record of a hit log.
const RECORD_LEN: usize = 16;

/// More hits than any log counts, in one record or in all: 2^53, the largest count a JSON
/// number holds exactly. Even at one hit every 100 ns (a hit hashes its arguments, looks
/// them up and decodes the value: it takes longer), that is 28 years of a core doing
/// nothing but hitting one function; a million hits a second would take 285 years. A
/// record of random bytes counts less only once in 2,048.
const MAX_LOGGED_HITS: u64 = 1 << 53;

/// Longer than any computation has run, in microseconds: 100 years. Each hit saves the
/// compute time its entry recorded, so a record cannot save more than this per hit.
pub(crate) const MAX_COMPUTE_US: u64 = 36_525 * 86_400 * 1_000_000;

/// Why a hit log is not one the runtime wrote: its length is not a whole number of
/// records, or a record holds what no process appends: no hits at all, more than 2^53 hits
/// (in a record or in all), more saved time per hit than 100 years. A log is written
/// only by whole 16-byte appends and whole-file renames, so such a log was damaged from
/// outside (a crash of the file system, a bad disk, another program).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedHitLog {
    /// The first implausible record, counted from 0; `None` for the log as a whole.
    record: Option<usize>,
    problem: HitLogProblem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HitLogProblem {
    Length(u64),
    NoHits,
    TooManyHits(u64),
    TooMuchSaved(HitRecord),
}

impl fmt::Display for DamagedHitLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.record {
            write!(f, "record {at}: ")?;
        }
        match &self.problem {
            HitLogProblem::Length(len) => {
                write!(
                    f,
                    "{len} bytes is not a whole number of {RECORD_LEN}-byte records"
                )
            }
            HitLogProblem::NoHits => f.write_str("a record of no hits"),
            HitLogProblem::TooManyHits(hits) => write!(
                f,
                "{hits} hits, more than any function is hit ({MAX_LOGGED_HITS})"
            ),
            HitLogProblem::TooMuchSaved(record) => write!(
                f,
                "{} µs saved by {} hits, longer per hit than any computation runs",
                record.saved_us, record.hits
            ),
        }
    }
}

impl std::error::Error for DamagedHitLog {}

/// One record of a hit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HitRecord {
    pub(crate) hits: u64,
    pub(crate) saved_us: u64,
}

impl HitRecord {
    pub(crate) fn to_bytes(self) -> [u8; RECORD_LEN] {
        let mut out = [0; RECORD_LEN];
        out[..8].copy_from_slice(&self.hits.to_le_bytes());
        out[8..].copy_from_slice(&self.saved_us.to_le_bytes());
        out
    }

    /// The sum of the records of a log's `bytes`, or why they are not a log the runtime
    /// wrote.
    pub(crate) fn parse_log(bytes: &[u8]) -> Result<HitRecord, DamagedHitLog> {
        let damaged = |at: Option<usize>, problem| {
            Err(DamagedHitLog {
                record: at,
                problem,
            })
        };
        if !bytes.len().is_multiple_of(RECORD_LEN) {
            return damaged(None, HitLogProblem::Length(bytes.len() as u64));
        }
        let mut sum = HitRecord {
            hits: 0,
            saved_us: 0,
        };
        for (at, record) in bytes
            .chunks_exact(RECORD_LEN)
            .map(HitRecord::from_bytes)
            .enumerate()
        {
            if record.hits == 0 {
                return damaged(Some(at), HitLogProblem::NoHits);
            }
            if record.hits > MAX_LOGGED_HITS {
                return damaged(Some(at), HitLogProblem::TooManyHits(record.hits));
            }
            if u128::from(record.saved_us) > u128::from(record.hits) * u128::from(MAX_COMPUTE_US) {
                return damaged(Some(at), HitLogProblem::TooMuchSaved(record));
            }
            // Cannot overflow: both are at most 2^53.
            sum.hits += record.hits;
            sum.saved_us = sum.saved_us.saturating_add(record.saved_us);
            if sum.hits > MAX_LOGGED_HITS {
                return damaged(None, HitLogProblem::TooManyHits(sum.hits));
            }
        }
        Ok(sum)
    }

    fn from_bytes(bytes: &[u8]) -> HitRecord {
        let word = |at: usize| {
            let mut out = [0; 8];
            out.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(out)
        };
        HitRecord {
            hits: word(0),
            saved_us: word(8),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::disk::scan::FunctionDir;
    use std::fs;

    /// A hit log's bytes holding `records` (`(hits, saved_us)`), for the tests here and in
    /// `scan`.
    pub(crate) fn log_of(records: &[(u64, u64)]) -> Vec<u8> {
        records
            .iter()
            .flat_map(|&(hits, saved_us)| HitRecord { hits, saved_us }.to_bytes())
            .collect()
    }

    #[test]
    fn hit_logs_sum_their_records() {
        let root = tempfile::tempdir().unwrap();
        let dir = FunctionDir {
            name: "f".into(),
            path: root.path().to_path_buf(),
        };
        assert_eq!(dir.hits().unwrap(), HitTotals::default(), "no log yet");
        fs::write(
            root.path().join(HIT_LOG),
            log_of(&[(2, 1_500_000), (1, 500_000), (7, 0)]),
        )
        .unwrap();
        assert_eq!(
            dir.hits().unwrap(),
            HitTotals {
                hits: 10,
                time_saved: Duration::from_secs(2)
            }
        );
        let gone = FunctionDir {
            name: "g".into(),
            path: root.path().join("gone"),
        };
        assert_eq!(gone.hits().unwrap(), HitTotals::default());
    }

    #[test]
    fn hit_logs_no_process_wrote_are_damaged() {
        let parse = |records: &[(u64, u64)]| HitRecord::parse_log(&log_of(records));
        // At the bounds: plausible.
        assert_eq!(
            parse(&[(MAX_LOGGED_HITS - 1, 0), (1, MAX_COMPUTE_US)]),
            Ok(HitRecord {
                hits: MAX_LOGGED_HITS,
                saved_us: MAX_COMPUTE_US
            })
        );
        assert_eq!(parse(&[]).map(|sum| sum.hits), Ok(0), "an empty log");
        let problem = |result: Result<HitRecord, DamagedHitLog>| {
            let damage = result.expect_err("damaged");
            (damage.record, damage.problem)
        };
        let mut torn = log_of(&[(1, 5)]);
        torn.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            problem(HitRecord::parse_log(&torn)),
            (None, HitLogProblem::Length(19))
        );
        assert_eq!(
            problem(parse(&[(1, 5), (0, 0)])),
            (Some(1), HitLogProblem::NoHits)
        );
        assert_eq!(
            problem(parse(&[(MAX_LOGGED_HITS + 1, 0)])),
            (Some(0), HitLogProblem::TooManyHits(MAX_LOGGED_HITS + 1))
        );
        assert_eq!(
            problem(parse(&[(u64::MAX, u64::MAX)])),
            (Some(0), HitLogProblem::TooManyHits(u64::MAX))
        );
        assert_eq!(
            problem(parse(&[(MAX_LOGGED_HITS, 0), (1, 0)])),
            (None, HitLogProblem::TooManyHits(MAX_LOGGED_HITS + 1)),
            "a total past the bound"
        );
        let greedy = HitRecord {
            hits: 2,
            saved_us: 2 * MAX_COMPUTE_US + 1,
        };
        assert_eq!(
            problem(parse(&[(greedy.hits, greedy.saved_us)])),
            (Some(0), HitLogProblem::TooMuchSaved(greedy))
        );
        // Random bytes, as `head -c 160 /dev/urandom` leaves: ten records, each of them
        // plausible once in 2,048 at most.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1000 {
            let random: Vec<u8> = (0..160)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(HitRecord::parse_log(&random).is_err());
        }
    }
}
