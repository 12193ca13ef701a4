//! Joining shard runs (`evalgate run --shard K/N` on several machines) into one run directory
//! whose reports are those of a single unsharded run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{self, JournalWriter, Record, RunMeta};

/// Merges the runs in `dirs` into `out` (which must not hold a run), writing run.json and
/// records.jsonl; the caller then writes the reports.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first_dir) = dirs.first() else {
        return Err(Error::Usage("merge needs at least one run directory".into()));
    };
    let metas: Vec<RunMeta> = dirs.iter().map(|d| RunMeta::read(d)).collect::<Result<_>>()?;
    let first = &metas[0];
    let backend_ids = |m: &RunMeta| m.backends.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
    for (dir, meta) in dirs.iter().zip(&metas).skip(1) {
        let differs = |what: &str| {
            Error::Usage(format!(
                "{} and {} differ in {what}; only shards of the same suite and backends can be merged",
                first_dir.display(),
                dir.display()
            ))
        };
        if meta.suite.sha256 != first.suite.sha256 {
            return Err(differs("suite file"));
        }
        if backend_ids(meta) != backend_ids(first) {
            return Err(differs("backends"));
        }
        if meta.task != first.task {
            return Err(differs("task"));
        }
    }
    // Items in suite order: shards record each item's position in the test data.
    let mut entries: Vec<(usize, String, Option<String>)> = Vec::new();
    let mut seen = HashSet::new();
    for (dir, meta) in dirs.iter().zip(&metas) {
        for (i, id) in meta.items.iter().enumerate() {
            if !seen.insert(id.clone()) {
                return Err(Error::Usage(format!(
                    "item `{id}` appears in more than one run ({} is one); merge shards of one split, each once",
                    dir.display()
                )));
            }
            let position =
                meta.positions.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(entries.len());
            let group = meta.groups.as_ref().and_then(|g| g.get(i).cloned());
            entries.push((position, id.clone(), group));
        }
    }
    entries.sort_by_key(|(position, _, _)| *position);
    let all_grouped = metas.iter().all(|m| m.groups.is_some());

    if out.join(journal::RECORDS_FILE).exists() {
        return Err(Error::Usage(format!(
            "{} already holds a run; choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut skipped = first.skipped.clone();
    for meta in &metas[1..] {
        for s in &meta.skipped {
            if !skipped.iter().any(|k| k.id == s.id) {
                skipped.push(s.clone());
            }
        }
    }
    let stops: Vec<String> = metas.iter().filter_map(|m| m.stopped.clone()).collect();
    let merged = RunMeta {
        backends: merged_backends(&metas),
        items: entries.iter().map(|(_, id, _)| id.clone()).collect(),
        groups: all_grouped
            .then(|| entries.iter().map(|(_, _, g)| g.clone().unwrap_or_default()).collect()),
        started_at: metas.iter().map(|m| m.started_at.clone()).min().unwrap_or_default(),
        finished_at: metas
            .iter()
            .map(|m| m.finished_at.clone())
            .collect::<Option<Vec<_>>>()
            .and_then(|f| f.into_iter().max()),
        stopped: (!stops.is_empty()).then(|| stops.join("; ")),
        skipped,
        shard: None,
        positions: None,
        leaked: metas.iter().flat_map(|m| m.leaked.iter().cloned()).collect(),
        ..first.clone()
    };
    let mut writer = JournalWriter::create(out)?;
    for dir in dirs {
        let mut failed = None;
        journal::read_records(dir, |r: Record| {
            if failed.is_none() {
                failed = writer.append(&r).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    writer.flush()?;
    merged.write(out)
}

/// Each backend as all the shards ran it: the batches of every shard, and why it was stopped in
/// any shard (the backends are the same in every shard; the merge checked).
fn merged_backends(metas: &[RunMeta]) -> Vec<crate::journal::BackendMeta> {
    let mut backends = metas[0].backends.clone();
    for (i, backend) in backends.iter_mut().enumerate() {
        let shards = || metas.iter().filter_map(|m| m.backends.get(i));
        let mut stops: Vec<String> = Vec::new();
        for reason in shards().filter_map(|b| b.stopped.clone()) {
            if !stops.contains(&reason) {
                stops.push(reason);
            }
        }
        backend.stopped = (!stops.is_empty()).then(|| stops.join("; "));
        backend.structured_output_used = shards().find_map(|b| b.structured_output_used.clone());
        backend.batch = shards().filter_map(|b| b.batch.clone()).reduce(|mut all, shard| {
            all.batches.extend(shard.batches);
            all.discount = all.discount.or(shard.discount);
            all
        });
    }
    backends
}
