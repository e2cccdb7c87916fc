//! The chaos run's verdict: the load's figures, each fault with how long
//! the part was gone and how long until flows went through again, the
//! audit's checks. Markdown for people, JSON for tests.

use std::{collections::BTreeMap, fmt::Write as _};

pub(super) use ordershop_loadgen::api::Format;
use ordershop_loadgen::api::LoadSummary;
use serde::Serialize;

use super::{ChaosArgs, audit::Audit, faults::FaultRecord};

#[derive(Debug, Clone, Serialize)]
pub(super) struct Report {
    seed: u64,
    duration_s: f64,
    clients: usize,
    load: LoadFigures,
    faults: Vec<FaultOutcome>,
    checks: Vec<Check>,
    audit: Audit,
}

#[derive(Debug, Clone, Serialize)]
struct LoadFigures {
    attempted: u64,
    completed: u64,
    failed: u64,
    /// `stage: message (count)`, most frequent first.
    failures: Vec<String>,
    flows_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Calls that failed for good, after retrying.
    calls_failed: u64,
    /// Tries that failed and were tried again (same idempotency key), by
    /// class: what the faults cost the clients on the way.
    retried: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
struct FaultOutcome {
    #[serde(flatten)]
    record: FaultRecord,
    /// From the fault until the first flow begun after it shipped; none
    /// when no flow began after it (the run's end).
    flows_again_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

impl Report {
    pub(super) fn new(
        args: &ChaosArgs,
        seed: u64,
        load: &LoadSummary,
        injected: Vec<FaultRecord>,
        audit: Audit,
    ) -> Report {
        let faults: Vec<FaultOutcome> = injected
            .into_iter()
            .map(|record| {
                let flows_again_s = load
                    .flows
                    .iter()
                    .filter(|flow| flow.completed && flow.started >= record.at)
                    .map(|flow| flow.ended - record.at)
                    .min()
                    .map(|d| d.as_secs_f64());
                FaultOutcome {
                    record,
                    flows_again_s,
                }
            })
            .collect();
        let checks = checks(load, &faults, &audit);
        Report {
            seed,
            duration_s: args.duration.as_secs_f64(),
            clients: args.clients,
            load: LoadFigures {
                attempted: load.attempted,
                completed: load.shipped,
                failed: load.failed,
                failures: load
                    .failures
                    .iter()
                    .map(|f| format!("{}: {} ({})", f.stage, f.message, f.count))
                    .collect(),
                flows_per_s: load.flows_per_s,
                p50_ms: load.p50_ms,
                p99_ms: load.p99_ms,
                calls_failed: load.calls_failed,
                retried: load.retried.clone(),
            },
            faults,
            checks,
            audit,
        }
    }

    pub(super) fn failed_checks(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }

    pub(super) fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                serde_json::to_string_pretty(self)
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                    + "\n"
            }
            Format::Markdown => self.markdown(),
        }
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let load = &self.load;
        let _ = writeln!(
            out,
            "# Chaos run: {:.0} s, {} clients, seed {}\n",
            self.duration_s, self.clients, self.seed
        );
        let _ = writeln!(
            out,
            "| flows attempted | completed | failed | flows/s | p50 ms | p99 ms | calls failed | tries retried |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {:.1} | {:.0} | {:.0} | {} | {} |\n",
            load.attempted,
            load.completed,
            load.failed,
            load.flows_per_s,
            load.p50_ms,
            load.p99_ms,
            load.calls_failed,
            load.retried.values().sum::<u64>()
        );
        for (class, count) in &load.retried {
            let _ = writeln!(out, "- retried after {class}: {count}");
        }
        for failure in &load.failures {
            let _ = writeln!(out, "- failed: {failure}");
        }
        let _ = writeln!(
            out,
            "\n| at s | fault | gone s | flows through again after s | problem |\n|---:|---|---:|---:|---|"
        );
        for fault in &self.faults {
            let _ = writeln!(
                out,
                "| {:.1} | {} | {} | {} | {} |",
                fault.record.at_s,
                fault.record.fault,
                seconds(fault.record.gone_s),
                seconds(fault.flows_again_s),
                fault.record.problem.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(out, "\n| check | | detail |\n|---|---|---|");
        for check in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                check.name,
                if check.passed { "ok" } else { "FAILED" },
                check.detail
            );
        }
        let _ = writeln!(out, "\n| topic | events | entities |\n|---|---:|---:|");
        for topic in &self.audit.topics {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                topic.topic, topic.events, topic.entities
            );
        }
        out
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |s| format!("{s:.1}"))
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn checks(load: &LoadSummary, faults: &[FaultOutcome], audit: &Audit) -> Vec<Check> {
    let streams_broken: Vec<String> = audit
        .topics
        .iter()
        .filter(|t| !t.intact())
        .map(|t| {
            format!(
                "{}: out of order {}, duplicate ids {}, versions hash {}",
                t.topic,
                listed(&t.out_of_order),
                listed(&t.duplicate_events),
                listed(&t.version_mismatches)
            )
        })
        .collect();
    let unrecovered: Vec<String> = faults
        .iter()
        .filter(|f| f.record.problem.is_some())
        .map(|f| format!("{} at {:.1} s", f.record.fault, f.record.at_s))
        .collect();
    let events: u64 = audit.topics.iter().map(|t| t.events).sum();
    vec![
        Check {
            name: "every flow completed",
            passed: load.attempted > 0 && load.failed == 0,
            detail: format!(
                "{} of {} flows shipped, {} failed",
                load.shipped, load.attempted, load.failed
            ),
        },
        Check {
            name: "every fault carried out and recovered from",
            passed: !faults.is_empty() && unrecovered.is_empty(),
            detail: format!(
                "{} faults; not recovered: {}",
                faults.len(),
                listed(&unrecovered)
            ),
        },
        Check {
            name: "stock exact",
            passed: load.stock_exact,
            detail: load.stock_detail.clone(),
        },
        Check {
            name: "read your writes",
            passed: load.unseen_reads == 0,
            detail: format!(
                "{} reads of a just-created order answered null",
                load.unseen_reads
            ),
        },
        Check {
            name: "every order has its stock verdict",
            passed: audit.without_verdict.is_empty(),
            detail: format!(
                "{} orders; still CREATED: {}",
                audit.orders,
                listed(&audit.without_verdict)
            ),
        },
        Check {
            name: "every billed order shipped",
            passed: audit.billed_not_shipped.is_empty(),
            detail: format!(
                "{} billings; not shipped: {}",
                audit.billings,
                listed(&audit.billed_not_shipped)
            ),
        },
        Check {
            name: "exactly one billing and one shipping per billed order",
            passed: audit.billed_twice.is_empty()
                && audit.shipping_count_wrong.is_empty()
                && audit.shipped_unbilled.is_empty(),
            detail: format!(
                "billed twice: {}; shippings not one: {}; shipped without billing: {}",
                listed(&audit.billed_twice),
                listed(&audit.shipping_count_wrong),
                listed(&audit.shipped_unbilled)
            ),
        },
        Check {
            name: "exactly one mail per idempotency key",
            passed: audit.duplicate_mails.is_empty(),
            detail: format!(
                "{} mails; keys sent twice: {}",
                audit.mails,
                listed(&audit.duplicate_mails)
            ),
        },
        Check {
            name: "every stream in order, no gaps, no duplicates",
            passed: streams_broken.is_empty(),
            detail: if streams_broken.is_empty() {
                format!("{events} events in {} topics", audit.topics.len())
            } else {
                streams_broken.join("; ")
            },
        },
        Check {
            name: "nothing dead-lettered",
            passed: audit.dead_total() == 0,
            detail: if audit.dead_letters.is_empty() {
                "none (ordershop dead-letters list)".to_owned()
            } else {
                audit
                    .dead_letters
                    .iter()
                    .map(|d| format!("{} {}: {}", d.kind, d.name, d.dead))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        },
    ]
}
