//! Sizes, ages and durations as people read them.

use std::time::{Duration, SystemTime};

/// `1.5 MiB`, `980 B`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `350ms`, `4.2s`, `3m 20s`, `5h 2m`, `2d 4h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    if secs < 60 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else {
        format!("{minutes}m {seconds}s")
    }
}

/// How long ago `time` was: `12s ago`, `3h ago`, `in the future` for a clock set back.
pub fn age(time: SystemTime, now: SystemTime) -> String {
    match now.duration_since(time) {
        Ok(d) if d.as_secs() < 60 => format!("{}s ago", d.as_secs()),
        Ok(d) if d.as_secs() < 3600 => format!("{}m ago", d.as_secs() / 60),
        Ok(d) if d.as_secs() < 86_400 => format!("{}h ago", d.as_secs() / 3600),
        Ok(d) => format!("{}d ago", d.as_secs() / 86_400),
        Err(_) => "in the future".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(300 << 20), "300 MiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(duration(Duration::from_millis(350)), "350ms");
        assert_eq!(duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(duration(Duration::from_secs(5 * 3600 + 120)), "5h 2m");
        assert_eq!(
            duration(Duration::from_secs(2 * 86_400 + 4 * 3600)),
            "2d 4h"
        );
        let now = SystemTime::now();
        assert_eq!(age(now - Duration::from_secs(12), now), "12s ago");
        assert_eq!(age(now - Duration::from_secs(3 * 3600), now), "3h ago");
        assert_eq!(age(now + Duration::from_secs(5), now), "in the future");
    }
}
