//! The large dataset (`--patients N --appointments M`): the bench tenant's
//! history written as a JSON Lines file and loaded through the bulk path of
//! `polyclinic import` ([`polyclinic::import`], the same library function
//! the CLI runs), into the in-process server's store, with its progress bar.
//!
//! What it makes, in the bench tenant (so every scenario runs on it after):
//! - `N` patients `P0..`, each with a unique Swedish national id, a phone
//!   and an e-mail address (the contact index gets both);
//! - `M` appointments `A0..` of healthcare service `gp`, at the addresses
//!   of the world's 50 practitioners, 15-minute slots 08:00-20:00 UTC going
//!   back day by day from yesterday (so they never meet the slot pool, which
//!   starts the day after tomorrow); patients drawn at random; one in ten
//!   cancelled, one in fifty a no-show, the rest completed.
//!
//! Seeding time (the file's generation and the import, apart) and the
//! process's resident memory are printed and recorded in `--out`.

use crate::world::{FIRST_HOUR, PRACTITIONERS, QUARTERS, SLOT_MINUTES, rfc3339};
use anyhow::Context;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The size asked for.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub patients: usize,
    pub appointments: usize,
}

/// What seeding took.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub size: Size,
    pub lines: u64,
    pub file_bytes: u64,
    pub generate_s: f64,
    pub import_s: f64,
    pub batches: u64,
    /// This process's VmRSS right after the import, KB.
    pub rss_after_import_kb: Option<i64>,
}

impl Seeded {
    pub fn json(&self) -> Value {
        json!({
            "patients": self.size.patients,
            "appointments": self.size.appointments,
            "lines": self.lines,
            "file_bytes": self.file_bytes,
            "generate_s": round(self.generate_s),
            "import_s": round(self.import_s),
            "seconds": round(self.generate_s + self.import_s),
            "batches": self.batches,
            "rows_per_s": round((self.size.patients + self.size.appointments) as f64 / self.import_s.max(1e-9)),
            "rss_after_import_kb": self.rss_after_import_kb,
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A deterministic generator (SplitMix64) for the patient draws.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// A valid Swedish national id, unique for `n` < 365,000: born on day
/// `n / 1000` after 1950-01-01, serial `n % 1000`, with its Luhn digit.
pub fn national_id(n: usize) -> String {
    let born = jiff::civil::date(1950, 1, 1) + jiff::Span::new().days((n / 1000) as i64);
    let body = format!("{}{:03}", born.strftime("%y%m%d"), n % 1000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    format!("19{body}{}", (10 - sum % 10) % 10)
}

/// Writes the dataset of `tenant` (whose practitioners are `p0..p49` at
/// addresses `a0..a49`, in healthcare service `gp`) to `path`; answers its
/// lines and bytes. `before_day`: midnight UTC of the day after the last one
/// used (unix seconds).
pub fn write_file(path: &Path, tenant: &str, size: Size, before_day: i64) -> anyhow::Result<(u64, u64)> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut lines = 0u64;
    for n in 0..size.patients {
        writeln!(
            out,
            r#"{{"type":"patient","tenant":"{tenant}","id":"P{n}","given":"Bulk","family":"Patient{n}","national_id":"{}","phone":"+4670{:07}","email":"p{n}@bulk.test","gender":"{}"}}"#,
            national_id(n),
            n,
            if n % 2 == 0 { "female" } else { "male" }
        )?;
        lines += 1;
    }
    let mut draw = Draw(0x5EED);
    for n in 0..size.appointments {
        // Appointment n: practitioner n % 50, its (n / 50)-th slot counted
        // back from the last quarter of the day before `before_day`.
        let practitioner = n % PRACTITIONERS;
        let back = n / PRACTITIONERS;
        let (day, quarter) = ((back / QUARTERS) as i64 + 1, (QUARTERS - 1 - back % QUARTERS) as i64);
        let start = before_day - day * 86_400 + FIRST_HOUR * 3600 + quarter * SLOT_MINUTES * 60;
        let status = match n % 50 {
            0 => "no-show",
            k if k % 10 == 5 => "cancelled",
            _ => "completed",
        };
        let patient = if size.patients > 0 { draw.below(size.patients) } else { 0 };
        writeln!(
            out,
            r#"{{"type":"appointment","tenant":"{tenant}","id":"A{n}","patient":"P{patient}","practitioner":"p{practitioner}","healthcare_service":"gp","address":"a{practitioner}","start":"{}","end":"{}","status":"{status}"}}"#,
            rfc3339(start),
            rfc3339(start + SLOT_MINUTES * 60)
        )?;
        lines += 1;
    }
    out.flush()?;
    let bytes = out.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
    Ok((lines, bytes))
}

/// Seeds the dataset into `store` (the in-process server's) for `tenant`,
/// through a file in `data_dir` (removed afterwards).
pub async fn seed(
    store: &polyclinic_store::Store,
    tenant: &str,
    size: Size,
    data_dir: &Path,
    today: i64,
) -> anyhow::Result<Seeded> {
    anyhow::ensure!(
        size.appointments == 0 || size.patients > 0,
        "--appointments needs --patients (every appointment has a patient)"
    );
    anyhow::ensure!(size.patients <= 365_000, "--patients: at most 365000 (unique national ids)");
    let path = data_dir.join(format!("polyclinic-bench-bulk-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let started = Instant::now();
    let (lines, file_bytes) = write_file(&path, tenant, size, today)?;
    let generate_s = started.elapsed().as_secs_f64();
    println!(
        "bulk: wrote {} lines ({:.0} MB) in {generate_s:.1} s; importing through `polyclinic import`'s bulk path",
        lines,
        file_bytes as f64 / 1e6
    );
    let opts = polyclinic::import::Options {
        batch: polyclinic_store::import::DEFAULT_BATCH,
        progress: polyclinic::import::Progress::Always,
    };
    let imported = polyclinic::import::import_file(store, &path, opts).await;
    let _ = std::fs::remove_file(&path);
    let summary = imported?.map_err(|f| anyhow::anyhow!("bulk import: {f}"))?;
    let seeded = Seeded {
        size,
        lines,
        file_bytes,
        generate_s,
        import_s: summary.seconds,
        batches: summary.batches,
        rss_after_import_kb: crate::rss_kb(std::process::id()).ok(),
    };
    anyhow::ensure!(
        summary.patients.imported as usize == size.patients
            && summary.appointments.imported as usize == size.appointments,
        "bulk import wrote {} patients and {} appointments of {} and {}",
        summary.patients.imported,
        summary.appointments.imported,
        size.patients,
        size.appointments
    );
    println!(
        "bulk: seeded {} patients and {} appointments in {:.1} s ({:.1} s generating, {:.1} s importing in {} transactions, {:.0} rows/s); RSS {} MB",
        size.patients,
        size.appointments,
        generate_s + summary.seconds,
        generate_s,
        summary.seconds,
        summary.batches,
        (size.patients + size.appointments) as f64 / summary.seconds.max(1e-9),
        seeded.rss_after_import_kb.map(|kb| (kb / 1024).to_string()).unwrap_or_else(|| "?".into())
    );
    Ok(seeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_ids_are_unique_and_valid() {
        let ids: std::collections::HashSet<String> = (0..5000).map(national_id).collect();
        assert_eq!(ids.len(), 5000);
        assert!(national_id(0).starts_with("19500101000"), "{}", national_id(0));
    }

    #[test]
    fn the_file_holds_patients_then_non_overlapping_appointments() {
        let path = std::env::temp_dir().join(format!("bulk-test-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let (lines, _) = write_file(&path, "t", Size { patients: 10, appointments: 500 }, 100 * 86_400).unwrap();
        assert_eq!(lines, 510);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (i, l) in text.lines().enumerate() {
            let line = polyclinic_store::import::parse(i as u64 + 1, l).unwrap().unwrap();
            if let polyclinic_store::import::Record::Appointment(a) = line.record {
                assert!(a.start.as_second() < 100 * 86_400, "before the day given");
                assert!(seen.insert((a.practitioner, a.start)), "one slot per practitioner and start");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
