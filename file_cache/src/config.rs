//! Configuration read from the environment, once per process.

use crate::size_limit;
use std::path::PathBuf;
use std::sync::OnceLock;

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
    /// `FILE_CACHE_MAX_SIZE`, in bytes: see [`crate::size_limit`].
    pub(crate) max_size: Option<u64>,
}

/// Environment variable naming the cache's root directory.
pub(crate) const DIR_VAR: &str = "FILE_CACHE_DIR";
/// Environment variable selecting the [`Mode`].
pub(crate) const MODE_VAR: &str = "FILE_CACHE";

impl Config {
    /// Builds the configuration from a variable lookup (the environment, or a map in tests).
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Config {
        let root = match var(DIR_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => default_root(),
        };
        let mode = match var(MODE_VAR) {
            None => Mode::On,
            Some(value) => Mode::parse(&value).unwrap_or_else(|| {
                log::warn!(
                    "file_cache: ignoring unknown {MODE_VAR}={value:?} (expected `off` or `refresh`); the cache stays on"
                );
                Mode::On
            }),
        };
        let max_size = var(size_limit::MAX_SIZE_VAR)
            .filter(|value| !value.trim().is_empty())
            .and_then(|value| match size_limit::parse_size(&value) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    log::warn!(
                        "file_cache: ignoring {}: {error}; the cache is not bounded",
                        size_limit::MAX_SIZE_VAR
                    );
                    None
                }
            });
        Config {
            root,
            mode,
            max_size,
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
    CONFIG.get_or_init(|| Config::from_lookup(|name| std::env::var(name).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_with(vars: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_to_temp_dir_and_on() {
        let config = config_with(&[]);
        assert_eq!(config.root, std::env::temp_dir().join("file_cache"));
        assert_eq!(config.mode, Mode::On);
    }

    #[test]
    fn dir_variable_sets_root() {
        let config = config_with(&[(DIR_VAR, "/some/where")]);
        assert_eq!(config.root, PathBuf::from("/some/where"));
        assert_eq!(config_with(&[(DIR_VAR, "")]).root, default_root());
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
        let var = size_limit::MAX_SIZE_VAR;
        assert_eq!(config_with(&[(var, "2GiB")]).max_size, Some(2 << 30));
        assert_eq!(config_with(&[(var, "huge")]).max_size, None);
    }
}
