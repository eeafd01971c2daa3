//! Configuration read from the environment, once per process. A leaf: it owns every setting
//! and its parsing (sizes included), and knows nothing that uses them.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Parses a duration as `#[file_cache(ttl = "...")]` takes it, and as the `file-cache`
/// tool's `prune --older-than` does: one or more `<digits><unit>` parts, with the units
/// `w` (weeks), `d` (days), `h`, `m` and `s`, each at most once and largest first. Spaces
/// around the whole are ignored; none may stand inside it.
///
/// `"0s"` parses (as zero); the attribute refuses a `ttl` of zero, which would cache
/// nothing, as its own rule.
///
/// ```
/// use file_cache::inspect::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
/// assert!(parse_duration("30m1h").is_err()); // largest unit first
/// assert!(parse_duration("3 days").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let error = |reason| ParseDurationError {
        text: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    let mut seconds: u64 = 0;
    let mut number: Option<u64> = None;
    let mut last_unit = u64::MAX;
    for c in trimmed.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(|| error("it is too large"))?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(error("it is not digits followed by a unit")),
        };
        let n = number
            .take()
            .ok_or_else(|| error("a unit needs a number before it"))?;
        if unit >= last_unit {
            return Err(error("each unit comes once, largest first"));
        }
        last_unit = unit;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| s.checked_add(seconds))
            .ok_or_else(|| error("it is too large"))?;
    }
    if number.is_some() {
        return Err(error("a number needs a unit after it"));
    }
    Ok(Duration::from_secs(seconds))
}

/// A duration that [`parse_duration`] does not understand; its message says why, and lists
/// the units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDurationError {
    text: String,
    reason: &'static str,
}

impl std::fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {}; units are w (weeks), d (days), h, m and s, each at \
             most once and largest first, e.g. 90s, 15m, 12h, 7d, 2w or 1h30m",
            self.text, self.reason
        )
    }
}

impl std::error::Error for ParseDurationError {}

/// What `FILE_CACHE` asks the cache to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read entries, and store results on a miss (the default).
    On,
    /// Bypass the cache entirely: read nothing, write nothing.
    Off,
    /// Never read; always run the function and overwrite its entry.
    Refresh,
}

impl Mode {
    /// Parses a `FILE_CACHE` value; `None` for a value we do not know.
    fn parse(value: &str) -> Option<Mode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "on" | "1" | "true" => Some(Mode::On),
            "off" | "0" | "false" => Some(Mode::Off),
            "refresh" => Some(Mode::Refresh),
            _ => None,
        }
    }
}

/// The process-wide configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) root: PathBuf,
    pub(crate) mode: Mode,
    /// The memory tier's budget in bytes (`FILE_CACHE_MEMORY`); 0 turns it off.
    pub(crate) memory: usize,
    /// `FILE_CACHE_SHARED=1`: the root is deliberately shared, skip the ownership checks.
    pub(crate) shared: bool,
    /// Temporary and lock files left by killed processes are removed once this old.
    pub(crate) stale_after: Duration,
    /// Simulated file-system faults, for tests only.
    pub(crate) faults: Faults,
    /// `FILE_CACHE_MAX_SIZE`, in bytes: see [`crate::disk::size_limit`].
    pub(crate) max_size: Option<u64>,
    /// `FILE_CACHE_READONLY=1`: nothing under the root is changed (see
    /// [`crate::disk::gate`]), and nothing is uploaded to the remote tier.
    pub(crate) read_only: bool,
}

/// File-system shortcomings a test can simulate (`FILE_CACHE_TEST_FAULTS`, not public API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    /// Locking a file fails with `Unsupported`, as on some network file systems.
    pub(crate) no_lock: bool,
    /// Renaming onto an existing file fails, as on some network file systems.
    pub(crate) no_rename_over: bool,
    /// Entries are written in small pieces with pauses, so a test that kills writers
    /// catches most of them in the middle of a write.
    pub(crate) slow_write: bool,
}

impl Faults {
    fn parse(value: &str) -> Faults {
        let mut faults = Faults::default();
        for fault in value.split(',').map(str::trim) {
            match fault {
                "no_lock" => faults.no_lock = true,
                "no_rename_over" => faults.no_rename_over = true,
                "slow_write" => faults.slow_write = true,
                _ => {}
            }
        }
        faults
    }
}

/// Environment variable naming the cache's root directory.
pub(crate) const DIR_VAR: &str = "FILE_CACHE_DIR";
/// Environment variable selecting the [`Mode`].
pub(crate) const MODE_VAR: &str = "FILE_CACHE";
/// Environment variable sizing the memory tier.
pub(crate) const MEMORY_VAR: &str = "FILE_CACHE_MEMORY";
/// The memory tier's budget when `FILE_CACHE_MEMORY` is not set: 64 MiB.
pub(crate) const DEFAULT_MEMORY: usize = 64 << 20;

/// `1234`, `64K`, `64M`, `2G` (binary multiples, an optional `B`/`iB`), any case.
fn parse_memory_size(value: &str) -> Option<usize> {
    let value = value.trim().to_ascii_uppercase();
    let value = value.trim_end_matches("IB").trim_end_matches('B');
    let (digits, shift) = match value.char_indices().last()? {
        (at, 'K') => (&value[..at], 10),
        (at, 'M') => (&value[..at], 20),
        (at, 'G') => (&value[..at], 30),
        _ => (value, 0),
    };
    let n: usize = digits.trim().parse().ok()?;
    n.checked_mul(1 << shift)
}

/// A setting's text; a value that is not UTF-8 cannot be one of ours, and is ignored with a
/// warning rather than taken as unset in silence.
fn text(name: &str, value: Option<OsString>) -> Option<String> {
    match value?.into_string() {
        Ok(text) => Some(text),
        Err(raw) => {
            log::warn!(
                "file_cache: ignoring {name}={}: not UTF-8; using its default",
                raw.to_string_lossy()
            );
            None
        }
    }
}

/// `path` against the working directory of the moment; as it is when that cannot be read
/// (a deleted working directory), where it then resolves on each use.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    match std::path::absolute(&path) {
        Ok(absolute) => absolute,
        Err(error) => {
            log::warn!(
                "file_cache: cannot make {DIR_VAR}={} absolute ({error}); it stays relative \
                 to the working directory",
                path.display()
            );
            path
        }
    }
}

/// Environment variable that accepts a root shared with other users.
pub(crate) const SHARED_VAR: &str = "FILE_CACHE_SHARED";
/// Environment variable that makes the cache read-only: hits are served, nothing is
/// written.
pub(crate) const READONLY_VAR: &str = "FILE_CACHE_READONLY";

/// Whether a yes/no setting says yes (`1`, `true`, `yes`, `on`, any case).
fn is_yes(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}
/// Hidden, for tests: seconds after which leftover temporary and lock files are stale.
const STALE_VAR: &str = "FILE_CACHE_TEST_STALE_SECS";
/// Hidden, for tests: simulated file-system faults, e.g. `no_lock,no_rename_over`.
const FAULTS_VAR: &str = "FILE_CACHE_TEST_FAULTS";
/// A writer that has not renamed its temporary file after this long is dead.
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

impl Config {
    /// Builds the configuration from a variable lookup (the environment, or a map in tests).
    fn from_lookup(var_os: impl Fn(&str) -> Option<OsString>) -> Config {
        // The root is a path, any bytes the platform allows: never swapped for another
        // directory because it is not UTF-8.
        let root = match var_os(DIR_VAR) {
            // Made absolute now: a later `chdir` must not move the root.
            Some(dir) if !dir.is_empty() => absolute(PathBuf::from(dir)),
            _ => default_root(),
        };
        let var = |name: &str| text(name, var_os(name));
        let mode = match var(MODE_VAR) {
            None => Mode::On,
            Some(value) => Mode::parse(&value).unwrap_or_else(|| {
                log::warn!(
                    "file_cache: ignoring unknown {MODE_VAR}={value:?} (expected `off` or `refresh`); the cache stays on"
                );
                Mode::On
            }),
        };
        let memory = match var(MEMORY_VAR) {
            None => DEFAULT_MEMORY,
            Some(value) => parse_memory_size(&value).unwrap_or_else(|| {
                log::warn!(
                    "file_cache: ignoring {MEMORY_VAR}={value:?} (expected bytes, e.g. `0`, `512M` or `2G`); using 64M"
                );
                DEFAULT_MEMORY
            }),
        };
        let max_size = var(MAX_SIZE_VAR)
            .filter(|value| !value.trim().is_empty())
            .and_then(|value| match parse_size(&value) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    log::warn!(
                        "file_cache: ignoring {}: {error}; the cache is not bounded",
                        MAX_SIZE_VAR
                    );
                    None
                }
            });
        let shared = var(SHARED_VAR).is_some_and(|value| is_yes(&value));
        let read_only = var(READONLY_VAR).is_some_and(|value| is_yes(&value));
        let stale_after = var(STALE_VAR)
            .and_then(|secs| secs.trim().parse().ok())
            .map_or(DEFAULT_STALE_AFTER, Duration::from_secs);
        let faults = var(FAULTS_VAR).map_or_else(Faults::default, |v| Faults::parse(&v));
        Config {
            root,
            mode,
            max_size,
            memory,
            shared,
            stale_after,
            faults,
            read_only,
        }
    }
}

/// `std::env::temp_dir()/file_cache`.
pub(crate) fn default_root() -> PathBuf {
    std::env::temp_dir().join("file_cache")
}

/// The configuration in force, read from the environment on first use.
pub(crate) fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    // Unit tests never touch the user's real cache.
    #[cfg(test)]
    let var = |name: &str| match name {
        DIR_VAR => Some(std::env::temp_dir().join("file_cache_unit_tests").into()),
        _ => std::env::var_os(name),
    };
    #[cfg(not(test))]
    let var = |name: &str| std::env::var_os(name);
    CONFIG.get_or_init(|| Config::from_lookup(var))
}

/// Environment variable bounding the root's size (`2GiB`, `500MB`, `1048576`).
pub(crate) const MAX_SIZE_VAR: &str = "FILE_CACHE_MAX_SIZE";

/// Parses a size: a number, optionally with a fraction, and an optional unit. `B`; `kB`,
/// `MB`, `GB`, `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` and the bare letters
/// `K`, `M`, `G`, `T` are powers of 1024. Case and spaces do not matter.
///
/// ```
/// use file_cache::inspect::parse_size;
///
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_size("500MB"), Ok(500_000_000));
/// assert_eq!(parse_size("1.5k"), Ok(1536));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let error = || ParseSizeError(text.to_owned());
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(error()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(error);
    }
    let value: f64 = number.parse().map_err(|_| error())?;
    let bytes = value * multiplier as f64;
    if bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(error())
    }
}

/// A size that [`parse_size`] does not understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSizeError(String);

impl fmt::Display for ParseSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size {:?} (expected a number with an optional unit: B, kB, MB, GB, KiB, MiB, GiB)",
            self.0
        )
    }
}

impl std::error::Error for ParseSizeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The table `#[file_cache(ttl = "...")]`'s parser is checked against too: the two
    /// grammars cannot drift apart.
    #[test]
    fn durations_follow_the_table_shared_with_the_attribute() {
        let table = include_str!("../../file_cache_macros/src/durations.txt");
        let mut cases = 0;
        for line in table.lines().filter(|line| !line.starts_with('#')) {
            let (input, expected) = line.rsplit_once('|').expect("input|result");
            let got = parse_duration(input);
            match expected {
                "error" => {
                    let error = got.expect_err(input).to_string();
                    assert!(error.contains("units are w (weeks), d (days), h, m and s"));
                }
                seconds => assert_eq!(
                    got,
                    Ok(Duration::from_secs(seconds.parse().unwrap())),
                    "{input:?}"
                ),
            }
            cases += 1;
        }
        assert!(cases > 20, "the table is read: {cases} cases");
    }

    fn config_with(vars: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[cfg(unix)]
    #[test]
    fn a_root_that_is_not_utf8_is_kept_and_other_settings_that_are_not_are_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(b"/tmp/caf\xe9/cache".to_vec());
        let config = Config::from_lookup(|name| match name {
            DIR_VAR | MODE_VAR | MEMORY_VAR => Some(raw.clone()),
            _ => None,
        });
        assert_eq!(config.root, PathBuf::from(raw));
        assert_eq!(config.mode, Mode::On);
        assert_eq!(config.memory, DEFAULT_MEMORY);
    }

    #[test]
    fn numeric_settings_out_of_range_take_their_default() {
        for bad in ["18446744073709551616", "1e19", "-1", "NaN", "", " "] {
            assert_eq!(
                config_with(&[(MEMORY_VAR, bad)]).memory,
                DEFAULT_MEMORY,
                "{bad}"
            );
            let stale = config_with(&[(STALE_VAR, bad)]).stale_after;
            assert_eq!(stale, DEFAULT_STALE_AFTER, "{bad}");
            let var = MAX_SIZE_VAR;
            assert_eq!(config_with(&[(var, bad)]).max_size, None, "{bad}");
        }
        let huge = u64::MAX.to_string();
        assert_eq!(
            config_with(&[(STALE_VAR, &huge)]).stale_after,
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(config_with(&[(MEMORY_VAR, &huge)]).memory as u64, u64::MAX);
    }

    #[test]
    fn defaults_to_temp_dir_and_on() {
        let config = config_with(&[]);
        assert_eq!(config.root, std::env::temp_dir().join("file_cache"));
        assert_eq!(config.mode, Mode::On);
        assert!(!config.shared);
        assert_eq!(config.stale_after, DEFAULT_STALE_AFTER);
        assert_eq!(config.faults, Faults::default());
    }

    #[test]
    fn shared_and_test_hooks() {
        assert!(config_with(&[(SHARED_VAR, "1")]).shared);
        assert!(!config_with(&[(SHARED_VAR, "0")]).shared);
        let config = config_with(&[(STALE_VAR, "0"), (FAULTS_VAR, "no_lock, no_rename_over")]);
        assert_eq!(config.stale_after, Duration::ZERO);
        assert!(config.faults.no_lock && config.faults.no_rename_over);
    }

    #[test]
    fn read_only_is_a_yes_or_no() {
        for yes in ["1", "true", "YES", " on "] {
            assert!(config_with(&[(READONLY_VAR, yes)]).read_only, "{yes}");
        }
        for no in ["0", "false", "", "no"] {
            assert!(!config_with(&[(READONLY_VAR, no)]).read_only, "{no}");
        }
        assert!(!config_with(&[]).read_only);
    }

    #[test]
    fn dir_variable_sets_root() {
        let config = config_with(&[(DIR_VAR, "/some/where")]);
        assert_eq!(config.root, PathBuf::from("/some/where"));
        assert_eq!(config_with(&[(DIR_VAR, "")]).root, default_root());
    }

    #[test]
    fn memory_budget_parses() {
        assert_eq!(config_with(&[]).memory, 64 << 20);
        assert_eq!(config_with(&[(MEMORY_VAR, "0")]).memory, 0);
        assert_eq!(config_with(&[(MEMORY_VAR, "1000")]).memory, 1000);
        assert_eq!(config_with(&[(MEMORY_VAR, "512k")]).memory, 512 << 10);
        assert_eq!(config_with(&[(MEMORY_VAR, " 256 MiB")]).memory, 256 << 20);
        assert_eq!(config_with(&[(MEMORY_VAR, "2G")]).memory, 2 << 30);
        assert_eq!(config_with(&[(MEMORY_VAR, "lots")]).memory, 64 << 20);
    }

    #[test]
    fn modes_parse_and_unknown_values_keep_the_cache_on() {
        assert_eq!(config_with(&[(MODE_VAR, "off")]).mode, Mode::Off);
        assert_eq!(config_with(&[(MODE_VAR, " OFF ")]).mode, Mode::Off);
        assert_eq!(config_with(&[(MODE_VAR, "refresh")]).mode, Mode::Refresh);
        assert_eq!(config_with(&[(MODE_VAR, "on")]).mode, Mode::On);
        assert_eq!(config_with(&[(MODE_VAR, "sometimes")]).mode, Mode::On);
    }

    #[test]
    fn max_size_parses_and_bad_values_leave_it_unbounded() {
        assert_eq!(config_with(&[]).max_size, None);
        let var = MAX_SIZE_VAR;
        assert_eq!(config_with(&[(var, "2GiB")]).max_size, Some(2 << 30));
        assert_eq!(config_with(&[(var, "huge")]).max_size, None);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("10k"), Ok(10_240));
        assert_eq!(parse_size("0.5M"), Ok(1 << 19));
        assert_eq!(parse_size("12"), Ok(12));
        for bad in [
            "",
            "MB",
            "1.2.3G",
            "-1",
            "5 parsecs",
            "99999999999999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }
}
