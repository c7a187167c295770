//! The checks of the command's numbers and durations, where clap parses
//! them: a bad value is a clear error (exit code 2), never a panic later.

use std::time::Duration;

/// A count of one or more that fits this machine's `usize`.
pub(crate) fn count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<u128>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => usize::try_from(n)
            .map_err(|_| format!("{text} is more than this machine can count ({})", usize::MAX)),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A count of one or more that fits a `u64`.
pub(crate) fn count_u64(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u128>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => u64::try_from(n).map_err(|_| format!("{text} is more than {}", u64::MAX)),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A count from 1 to `u32::MAX` (an HTTP/2 setting).
pub(crate) fn count_u32(text: &str) -> Result<u32, String> {
    let n = count_u64(text)?;
    u32::try_from(n).map_err(|_| format!("{text} is more than {}", u32::MAX))
}

/// Seconds, fractions allowed. Anything up to `Duration::MAX`, or larger
/// (`1e30`, `inf`), means "never"; zero, a negative number, or less than
/// the clock's 1 ns is an error.
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let secs = match text.trim().parse::<f64>() {
        Ok(s) if s.is_nan() => return Err(format!("{text:?} is not a number of seconds")),
        Ok(s) => s,
        Err(_) => return Err(format!("{text:?} is not a number of seconds")),
    };
    if secs <= 0.0 {
        return Err("must be more than 0 seconds".to_owned());
    }
    let duration = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    if duration.is_zero() {
        return Err(format!(
            "{text} seconds is less than the clock's resolution (1 ns)"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_too_large_mean_never_and_too_small_are_errors() {
        assert_eq!(seconds("1e30"), Ok(Duration::MAX));
        assert_eq!(seconds("18446744073709551615"), Ok(Duration::MAX));
        assert_eq!(seconds("inf"), Ok(Duration::MAX));
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("1e-10").unwrap_err().contains("resolution"));
        assert!(seconds("0").is_err() && seconds("-1").is_err() && seconds("NaN").is_err());
    }

    #[test]
    fn counts_are_checked() {
        assert_eq!(count("3"), Ok(3));
        assert!(count("0").unwrap_err().contains("at least 1"));
        assert!(count("340282366920938463463374607431768211456").is_err());
        assert_eq!(count_u64("18446744073709551615"), Ok(u64::MAX));
        assert!(count_u64("18446744073709551616").is_err());
    }
}
