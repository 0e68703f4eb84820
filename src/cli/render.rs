//! What the commands print: the run summary, previews, explanations, the run history and
//! the vacuum report. Pure formatting of the library's reports; no work happens here.

use chrono::{DateTime, Utc};

use crate::read;
use crate::read::history::RunSummary;
use crate::read::preview::{AudienceExplanation, PreviewReport};
use crate::run;
use crate::spec::format_duration;
use crate::store::retention::VacuumReport;

/// `cohort run`'s (and the demo's) summary of a run: what it read, built and published.
pub(super) fn print_summary(r: &run::RunReport) {
    let rec = &r.record;
    println!(
        "run {} of `{}` as of {}: {} events from {} rows read ({} duplicates, {} bad, {} after as-of)",
        rec.run_id,
        rec.space,
        rec.as_of.format("%Y-%m-%d %H:%M:%S UTC"),
        rec.events,
        rec.rows_read,
        rec.duplicates,
        rec.bad_events,
        rec.after_as_of
    );
    for (k, v) in &rec.events_by_source_type {
        println!("  {k:<28} {v:>10}");
    }
    if !rec.errors_by_reason.is_empty() {
        println!("  set aside (see event_errors):");
        for (k, v) in &rec.errors_by_reason {
            println!("    {k:<26} {v:>10}");
        }
    }
    if !rec.skipped_files.is_empty() {
        println!(
            "  unreadable files set aside ({}):",
            rec.skipped_files.len()
        );
        for f in &rec.skipped_files {
            println!("    {}: {}", f.file, f.reason);
        }
    }
    let ing = &rec.ingest;
    if !ing.mode.is_empty() {
        println!(
            "  sources ({}{}): {} files read, {} already in the event history",
            ing.mode,
            ing.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            ing.new_files,
            ing.known_files
        );
    }
    if let Some(id) = &rec.identity {
        println!(
            "  identity ({}{}): {} identifiers{}, {} edges, {} rounds, {} profiles, {} merged, {} violations",
            id.mode,
            id.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            id.identifiers,
            match (id.affected_identifiers, id.changed_events) {
                (Some(a), Some(c)) => format!(" ({a} resolved again, from {c} changed events)"),
                _ => String::new(),
            },
            id.edges,
            id.rounds,
            id.profiles,
            id.merges,
            id.violations
        );
        if let Some(big) = id.largest_components.first() {
            println!(
                "    largest component: {} identifiers (e.g. {}); {} components break a limit",
                big.identifiers, big.example, id.violating_components
            );
        }
    }
    if let Some(p) = &rec.profiles {
        println!(
            "  profiles: {} with {} custom, {} computed and {} SQL trait columns{}; accounts: {} with {} account traits",
            p.profiles,
            p.custom_traits.len(),
            p.computed_traits
                .keys()
                .filter(|k| !k.starts_with("accounts."))
                .count(),
            p.sql_traits.len(),
            if p.sql_trait_profiles > 0 {
                format!(" ({} profiles started by SQL traits)", p.sql_trait_profiles)
            } else {
                String::new()
            },
            p.accounts,
            p.account_traits.len()
                + p.computed_traits
                    .keys()
                    .filter(|k| k.starts_with("accounts."))
                    .count(),
        );
        if !p.skipped_traits.is_empty() {
            println!(
                "    trait keys left out (name taken or dotted): {}",
                p.skipped_traits.join(", ")
            );
        }
        let r = &p.recompute;
        match &r.reason {
            Some(why) => {
                println!("    traits and audiences (full: {why}): every profile evaluated")
            }
            None => println!(
                "    traits and audiences ({}): {} of {} profiles evaluated, the others kept their values",
                r.mode, r.profiles, p.profiles
            ),
        }
        let list = |s: &std::collections::BTreeSet<String>| {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        let k = &r.kept;
        if !k.is_empty() {
            println!(
                "    not evaluated (not selected or due), every profile kept its values: traits [{}], SQL traits [{}], audiences [{}]",
                list(&k.traits),
                list(&k.sql_traits),
                list(&k.audiences)
            );
        }
        if !r.unchanged_sql_traits.is_empty() {
            println!(
                "    SQL traits not evaluated, nothing they read changed (every profile kept its values): [{}]",
                list(&r.unchanged_sql_traits)
            );
        }
        if !r.keyed_sql_traits.is_empty() {
            let each: Vec<String> = r
                .keyed_sql_traits
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect();
            println!(
                "    SQL traits evaluated for the identifiers of the changed events only (every other identifier kept its row): [{}]",
                each.join(", ")
            );
        }
        let e = &r.edited;
        if !e.is_empty() {
            println!(
                "    evaluated for every profile (edited, new, account-level, `within_last`, or reading one of those): traits [{}], audiences [{}]",
                list(&e.traits),
                list(&e.audiences)
            );
        }
    }
    if let Some(a) = &rec.audiences {
        if !a.audiences.is_empty() {
            println!("  audiences:                            members    entered     exited");
        }
        for (k, c) in &a.audiences {
            let name = if c.entity == "accounts" {
                format!("{k} (accounts)")
            } else {
                k.clone()
            };
            println!(
                "    {name:<32} {:>10} {:>10} {:>10}",
                c.members, c.entered, c.exited
            );
        }
        for w in &a.warnings {
            println!("    warning: {w}");
        }
    }
    let timings: Vec<String> = rec
        .stage_timings
        .iter()
        .map(|(k, v)| format!("{k} {:.2}s", *v as f64 / 1000.0))
        .collect();
    println!("  stages: {}", timings.join(", "));
    println!("published to {}", r.output);
    for (t, v) in &r.manifest.tables {
        println!("  {t:<28} delta version {v}");
    }
    if let Some(v) = &r.vacuum {
        print_after_run(v);
    }
}

/// `cohort preview`'s report.
pub(super) fn print_preview(r: &PreviewReport) {
    println!(
        "audience `{}` ({}) as of {}: {} of {} {} ({:.1}%)",
        r.key,
        r.entity,
        r.as_of,
        r.size,
        r.total,
        r.entity,
        if r.total == 0 {
            0.0
        } else {
            100.0 * r.size as f64 / r.total as f64
        }
    );
    println!("  each top-level condition on its own:");
    for (text, n) in &r.conditions {
        println!("    {n:>10}  {text}");
    }
    if !r.overlaps.is_empty() {
        println!("  overlap with the other audiences:");
        for o in &r.overlaps {
            println!(
                "    {:<28} {:>10} members, {:>10} in both",
                o.key, o.size, o.both
            );
        }
    }
    println!("  sample members:");
    for (id, ids) in &r.samples {
        println!("    {id}  {ids}");
    }
    println!("nothing was published");
}

/// `cohort explain audience`'s report.
pub(super) fn print_audience_explanation(ex: &AudienceExplanation) {
    println!(
        "{} {} is {} audience `{}` (as of {})",
        if ex.entity == "accounts" {
            "account"
        } else {
            "profile"
        },
        ex.id,
        if ex.member { "IN" } else { "NOT in" },
        ex.key,
        ex.as_of
    );
    for c in &ex.conditions {
        println!("  [{}] {}", if c.holds { "true " } else { "false" }, c.text);
        for (k, v) in &c.traits {
            println!("      trait('{k}') = {}", v.as_deref().unwrap_or("null"));
        }
        for (chain, evs) in &c.events {
            println!(
                "      {chain}: {} matching event(s){}",
                evs.len(),
                if evs.len() == 20 { " (newest 20)" } else { "" }
            );
            for (m, t) in evs {
                println!("        {t}  {m}");
            }
        }
    }
}

/// The text `cohort explain identity` prints.
pub(super) fn render_identity_explanation(ex: &read::explain::IdentityExplanation) -> String {
    use std::fmt::Write;
    let t = |d: &DateTime<Utc>| d.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (run {}, as of {})",
        ex.identifier, ex.run_id, ex.as_of
    );
    match &ex.profile_id {
        Some(p) => {
            let _ = writeln!(s, "\nprofile {p}, {} identifiers:", ex.identifiers.len());
            for i in &ex.identifiers {
                let _ = writeln!(
                    s,
                    "  {:<14} {:<40} first seen {}  last seen {}",
                    i.id_type,
                    i.id_value,
                    t(&i.first_seen),
                    t(&i.last_seen)
                );
            }
            if ex.chain.is_empty() {
                let _ = writeln!(s, "\n{} is the profile's first identifier.", ex.identifier);
            } else {
                let _ = writeln!(s, "\nhow {} joined the profile:", ex.identifier);
                for l in &ex.chain {
                    let _ = writeln!(
                        s,
                        "  {}  event {}  linked {} -> {}",
                        t(&l.timestamp),
                        l.message_id,
                        l.from,
                        l.to
                    );
                }
            }
        }
        None if ex.violations.is_empty() => {
            let _ = writeln!(
                s,
                "\nno profile has this identifier and no event dropped it."
            );
        }
        None => {
            let _ = writeln!(
                s,
                "\nbelongs to no profile: it was blocked or dropped in every event that carried it."
            );
        }
    }
    if !ex.repairs.is_empty() {
        let _ = writeln!(s, "\nrepairs that name it:");
        for r in &ex.repairs {
            let _ = writeln!(s, "  {r}");
        }
    }
    if !ex.violations.is_empty() {
        let _ = writeln!(s, "\ndropped or blocked in these events:");
        for v in &ex.violations {
            let _ = writeln!(
                s,
                "  {}  event {}  rule {}: {}{}",
                t(&v.timestamp),
                v.message_id,
                v.rule,
                v.detail.as_deref().unwrap_or(""),
                v.profile_id
                    .as_ref()
                    .map(|p| format!(" (the event went to {p})"))
                    .unwrap_or_default()
            );
        }
    }
    s
}

/// The text `cohort identity diff` prints.
pub(super) fn render_identity_diff(d: &read::identity_diff::IdentityDiff) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "against run {}: {} identifiers now, {} after the next run",
        d.run_id, d.identifiers_before, d.identifiers_after
    );
    if d.is_empty() {
        let _ = writeln!(s, "the next run changes no identifier's profile");
        return s;
    }
    let _ = writeln!(
        s,
        "identifiers: {} move to another profile, {} arrive, {} leave every profile",
        d.moved, d.arrived, d.left
    );
    let _ = writeln!(s, "profiles: {} merge, {} split", d.merged, d.split);
    let name = |p: &Option<String>| p.clone().unwrap_or_else(|| "(no profile)".into());
    let parts = |v: &[(Option<String>, u64)]| {
        v.iter()
            .map(|(p, n)| format!("{} ({n})", name(p)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for m in &d.merged_examples {
        let _ = writeln!(s, "  merge into {}: {}", m.profile_id, parts(&m.parts));
    }
    for m in &d.split_examples {
        let _ = writeln!(s, "  split {}: {}", m.profile_id, parts(&m.parts));
    }
    let _ = writeln!(s, "for example:");
    for m in &d.examples {
        let _ = writeln!(
            s,
            "  {:<40} {} -> {}",
            m.identifier,
            name(&m.from),
            name(&m.to)
        );
    }
    let shown = d.examples.len() as u64;
    if d.moved + d.arrived + d.left > shown {
        let _ = writeln!(s, "  ... and {} more", d.moved + d.arrived + d.left - shown);
    }
    s
}

/// `cohort runs`: the run history, newest first (the first `limit`).
pub(super) fn print_runs(runs: &[RunSummary], limit: usize) {
    println!(
        "{:<26} {:<10} {:<20} {:>9}  trigger",
        "run", "status", "started (UTC)", "seconds"
    );
    for r in runs.iter().take(limit) {
        println!(
            "{:<26} {:<10} {:<20} {:>9.1}  {}",
            r.run_id,
            r.status,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.duration_ms as f64 / 1000.0,
            r.trigger.as_deref().unwrap_or("-")
        );
        if !r.stage_timings.is_empty() {
            let t: Vec<String> = r
                .stage_timings
                .iter()
                .map(|(k, v)| format!("{k} {:.1}s", *v as f64 / 1000.0))
                .collect();
            println!("    stages: {}", t.join(", "));
        }
        for (k, (members, entered, exited)) in &r.audiences {
            println!("    {k:<30} {members:>9} members  +{entered} -{exited}");
        }
        if let Some(m) = &r.message {
            println!("    {}: {m}", r.status);
        }
    }
}

/// `cohort vacuum`'s report on `space`.
pub(super) fn print_vacuum(space: &str, report: &VacuumReport) {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "vacuum of `{}` (keeping the versions named within {}): {verb} {} file(s), {:.1} MB",
        space,
        format_duration(report.retain),
        report.files(),
        report.bytes() as f64 / 1e6
    );
    for t in &report.tables {
        println!(
            "  {:<28} {:>6} file(s) {:>10.1} MB   kept versions {}",
            t.table,
            t.files.len(),
            t.bytes as f64 / 1e6,
            versions(&t.kept_versions)
        );
        if report.dry_run {
            for f in &t.files {
                println!("    {f}");
            }
        }
    }
    if report.manifests_removed > 0 && !report.dry_run {
        println!(
            "  {} manifest(s) older than the window left the history",
            report.manifests_removed
        );
    }
}

/// `3, 5, 7` or `3, 4, ... 9 (7 versions)` when long.
fn versions(v: &[u64]) -> String {
    if v.is_empty() {
        return "none (no kept manifest names it)".into();
    }
    let all: Vec<String> = v.iter().map(u64::to_string).collect();
    if all.len() <= 6 {
        return all.join(", ");
    }
    format!(
        "{}, {}, ... {} ({} versions)",
        all[0],
        all[1],
        all[all.len() - 1],
        all.len()
    )
}

/// One line after a run whose retention was due.
pub(super) fn print_after_run(r: &VacuumReport) {
    if r.files() > 0 {
        println!(
            "retention ({}): removed {} file(s) of old table versions, {:.1} MB",
            format_duration(r.retain),
            r.files(),
            r.bytes() as f64 / 1e6
        );
    }
}

/// The commands printed under "Next" / "Try next" start with `cohort`; when no `cohort` is on
/// the PATH (the usual case right after `cargo run --release -- demo`), say how to get one.
pub(super) fn print_path_hint() {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("cohort").is_file()))
        .unwrap_or(false);
    if !on_path {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "target/release/cohort".into());
        println!(
            "  (`cohort` is not on your PATH: run `cargo install --path .` in the Cohort folder,"
        );
        println!("   or type `cargo run --release --` or {exe} in its place)");
    }
}
