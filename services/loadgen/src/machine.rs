//! The machine the numbers came from, and how busy it was: numbers from a
//! shared 2-core box mean little without its load average next to them.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    pub(crate) cpus: usize,
    pub(crate) memory_gib: f64,
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LoadAverage {
    pub(crate) one: f64,
    pub(crate) five: f64,
    pub(crate) fifteen: f64,
}

/// What can be read about this machine; unknown parts stay empty (e.g. on
/// a system without `/proc`).
pub(crate) fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".to_owned()),
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: memory_kib(&meminfo).map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0)),
    }
}

pub(crate) fn load_average() -> Option<LoadAverage> {
    parse_load_average(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn memory_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn parse_load_average(text: &str) -> Option<LoadAverage> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some(LoadAverage {
        one: fields.next()?.ok()?,
        five: fields.next()?.ok()?,
        fifteen: fields.next()?.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_formats() {
        assert_eq!(
            parse_load_average("5.12 4.71 4.04 6/208 30059\n"),
            Some(LoadAverage {
                one: 5.12,
                five: 4.71,
                fifteen: 4.04
            })
        );
        assert_eq!(parse_load_average("garbage"), None);
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: x\n").as_deref(),
            Some("AMD EPYC")
        );
        assert_eq!(
            memory_kib("MemTotal:       24573500 kB\n"),
            Some(24_573_500)
        );
    }
}
