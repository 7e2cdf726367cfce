//! Message templates: one file per language and kind,
//! `{language}/{kind}.txt`, whose first line is `Subject: …`, then a blank
//! line, then the body. German, English and Swedish are built in
//! (`crates/messaging/templates`); a clinic overrides any of them, or adds a
//! language, with files of the same names in its own folder
//! (`--message-templates DIR`).
//!
//! Placeholders: `{patient}`, `{practitioner}`, `{clinic}`, `{date}`,
//! `{time}` (in the tenant's time zone) and `{join}` (the video call's join
//! link). A line holding `{join}` is left out of a visit that is no video
//! call.

use std::collections::HashMap;
use std::path::Path;

/// The kinds of message, as `GET /admin/messages` names them.
pub const KINDS: [&str; 6] = [
    "appointment-confirmed",
    "appointment-postponed",
    "appointment-reminder",
    "check-in-invitation",
    "appointment-cancelled",
    "delay-notice",
];

/// The language used when the tenant's has no template.
const FALLBACK: &str = "en";

macro_rules! builtin {
    ($($lang:literal),*) => {
        &[$(
            ($lang, "appointment-confirmed", include_str!(concat!("../templates/", $lang, "/appointment-confirmed.txt"))),
            ($lang, "appointment-postponed", include_str!(concat!("../templates/", $lang, "/appointment-postponed.txt"))),
            ($lang, "appointment-reminder", include_str!(concat!("../templates/", $lang, "/appointment-reminder.txt"))),
            ($lang, "check-in-invitation", include_str!(concat!("../templates/", $lang, "/check-in-invitation.txt"))),
            ($lang, "appointment-cancelled", include_str!(concat!("../templates/", $lang, "/appointment-cancelled.txt"))),
            ($lang, "delay-notice", include_str!(concat!("../templates/", $lang, "/delay-notice.txt"))),
        )*]
    };
}

const BUILTIN: &[(&str, &str, &str)] = builtin!("de", "en", "sv");

/// One template: a subject line and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub subject: String,
    pub body: String,
}

impl Template {
    /// Reads a template file's text.
    fn parse(text: &str) -> Result<Template, String> {
        let text = text.replace("\r\n", "\n");
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = first.strip_prefix("Subject:").ok_or("the first line must be `Subject: …`")?.trim();
        Ok(Template { subject: subject.to_owned(), body: rest.trim_start_matches('\n').trim_end().to_owned() })
    }
}

/// What fills a template's placeholders.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub patient: String,
    pub practitioner: String,
    pub clinic: String,
    pub date: String,
    pub time: String,
    pub join: Option<String>,
}

/// The templates by language and kind.
#[derive(Debug, Clone)]
pub struct Templates(HashMap<(String, String), Template>);

impl Templates {
    /// The built-in templates, overridden by the files in `dir` (if given):
    /// `dir/{language}/{kind}.txt`. An unreadable or malformed file is an
    /// error naming it; a missing one leaves the built-in template.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut all = HashMap::new();
        for (lang, kind, text) in BUILTIN {
            let t = Template::parse(text).map_err(|e| format!("built-in template {lang}/{kind}: {e}"))?;
            all.insert((lang.to_string(), kind.to_string()), t);
        }
        let Some(dir) = dir else { return Ok(Templates(all)) };
        let langs = std::fs::read_dir(dir).map_err(|e| format!("message templates {}: {e}", dir.display()))?;
        for entry in langs {
            let entry = entry.map_err(|e| format!("message templates {}: {e}", dir.display()))?;
            if !entry.path().is_dir() {
                continue;
            }
            let lang = entry.file_name().to_string_lossy().to_ascii_lowercase();
            for kind in KINDS {
                let path = entry.path().join(format!("{kind}.txt"));
                if !path.exists() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let t = Template::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                all.insert((lang.clone(), kind.to_owned()), t);
            }
        }
        Ok(Templates(all))
    }

    /// The message of `kind` in `language` (else English), filled in.
    pub fn render(&self, language: &str, kind: &str, fields: &Fields) -> Option<Template> {
        let t = self
            .0
            .get(&(language.to_ascii_lowercase(), kind.to_owned()))
            .or_else(|| self.0.get(&(FALLBACK.to_owned(), kind.to_owned())))?;
        Some(Template { subject: fill(&t.subject, fields), body: fill(&t.body, fields) })
    }
}

/// `text` with its placeholders filled; lines with `{join}` dropped when
/// there is no join link.
fn fill(text: &str, f: &Fields) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| f.join.is_some() || !l.contains("{join}"))
        .map(|l| {
            l.replace("{patient}", &f.patient)
                .replace("{practitioner}", &f.practitioner)
                .replace("{clinic}", &f.clinic)
                .replace("{date}", &f.date)
                .replace("{time}", &f.time)
                .replace("{join}", f.join.as_deref().unwrap_or_default())
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(join: Option<&str>) -> Fields {
        Fields {
            patient: "Eva Holm".into(),
            practitioner: "Ann Berg".into(),
            clinic: "Acme".into(),
            date: "2030-03-05".into(),
            time: "10:00".into(),
            join: join.map(str::to_owned),
        }
    }

    #[test]
    fn every_kind_is_built_in_for_german_english_and_swedish() {
        let t = Templates::load(None).unwrap();
        for lang in ["de", "en", "sv"] {
            for kind in KINDS {
                let m = t.render(lang, kind, &fields(Some("https://x/video/k"))).unwrap();
                assert!(!m.subject.is_empty() && !m.body.is_empty(), "{lang}/{kind}");
                assert!(!m.body.contains('{') && !m.subject.contains('{'), "{lang}/{kind}: {m:?}");
            }
        }
    }

    #[test]
    fn the_join_line_is_left_out_of_a_visit_that_is_no_video_call() {
        let t = Templates::load(None).unwrap();
        let with = t.render("en", "appointment-confirmed", &fields(Some("https://x/video/k"))).unwrap();
        assert!(with.body.contains("https://x/video/k"));
        let without = t.render("en", "appointment-confirmed", &fields(None)).unwrap();
        assert!(!without.body.contains("video call"), "{}", without.body);
        assert_eq!(
            t.render("fi", "appointment-confirmed", &fields(None)),
            Some(without),
            "English for an unknown language"
        );
    }

    #[test]
    fn a_clinic_overrides_a_template_with_a_file_of_its_own() {
        let dir = std::env::temp_dir().join(format!("polyclinic-templates-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sv")).unwrap();
        std::fs::write(
            dir.join("sv/appointment-reminder.txt"),
            "Subject: Glöm inte {date}\n\nVi ses {time}, {patient}!\n",
        )
        .unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let m = t.render("sv", "appointment-reminder", &fields(None)).unwrap();
        assert_eq!((m.subject.as_str(), m.body.as_str()), ("Glöm inte 2030-03-05", "Vi ses 10:00, Eva Holm!"));
        std::fs::write(dir.join("sv/appointment-reminder.txt"), "no subject line").unwrap();
        assert!(Templates::load(Some(&dir)).unwrap_err().contains("appointment-reminder.txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
