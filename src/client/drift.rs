//! The seeds' drift check prints `SYNC_STATUS=SYNCED|OUT_OF_SYNC` and
//! `DRIFTED_FILES=a,b,c` among Ansible's own output; `--drift-output` reads those two lines.

/// The value after `name` anywhere in `line`: as printed (`SYNC_STATUS=SYNCED`), or inside
/// Ansible's `debug` output (`"msg": "SYNC_STATUS=SYNCED"`), without quotes or a trailing
/// comma.
fn marker(line: &str, name: &str) -> Option<String> {
    let start = line.find(name)?;
    let value = &line[start + name.len()..];
    let value = value.trim().trim_end_matches(',').trim();
    let value = value.strip_suffix('"').unwrap_or(value);
    let value = value.strip_prefix('"').unwrap_or(value);
    Some(value.trim().to_owned())
}

/// What a drift check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The status as the markers spell it, for the report's `status` (`SYNCED`,
    /// `OUT_OF_SYNC`; the server takes any case).
    pub status: String,
    pub changed_files: Vec<String>,
}

/// Reads the markers from a drift check's output; other lines are ignored. A missing
/// `SYNC_STATUS=` marker, or a status other than SYNCED and OUT_OF_SYNC, is an error (and
/// nothing is sent). `DRIFTED_FILES=` may be missing or empty: no files.
pub fn parse(output: &str) -> Result<Drift, String> {
    let mut status: Option<String> = None;
    let mut files: Option<Vec<String>> = None;
    for line in output.lines() {
        if let Some(value) = marker(line, "SYNC_STATUS=") {
            if status.as_ref().is_some_and(|seen| *seen != value) {
                return Err(format!(
                    "the drift output has two different SYNC_STATUS= lines ({} and {value}): \
                     a check of several hosts? Report each host with its own output; nothing \
                     was sent",
                    status.unwrap_or_default()
                ));
            }
            status = Some(value);
        } else if let Some(value) = marker(line, "DRIFTED_FILES=") {
            let list: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect();
            if files.as_ref().is_some_and(|seen| *seen != list) {
                return Err(
                    "the drift output has two different DRIFTED_FILES= lines: a check of \
                     several hosts? Report each host with its own output; nothing was sent"
                        .to_owned(),
                );
            }
            files = Some(list);
        }
    }
    let status = status.ok_or_else(|| {
        "the drift output has no SYNC_STATUS= line (expected SYNC_STATUS=SYNCED or \
         SYNC_STATUS=OUT_OF_SYNC); nothing was sent"
            .to_owned()
    })?;
    if !matches!(
        status.to_ascii_uppercase().as_str(),
        "SYNCED" | "OUT_OF_SYNC"
    ) {
        return Err(format!(
            "SYNC_STATUS={status:?} is neither SYNCED nor OUT_OF_SYNC; nothing was sent"
        ));
    }
    Ok(Drift {
        status,
        changed_files: files.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_and_drifted_with_ansible_noise_around_the_markers() {
        let synced =
            parse("PLAY [drift] ***\nok: [rsyslog-01]\nSYNC_STATUS=SYNCED\nDRIFTED_FILES=\n")
                .unwrap();
        assert_eq!(synced.status, "SYNCED");
        assert!(synced.changed_files.is_empty());
        let output = "TASK [check] ****\n  changed: [rsyslog-01]\n  SYNC_STATUS=OUT_OF_SYNC\n  \
                      DRIFTED_FILES=/etc/rsyslog.conf, /etc/rsyslog.d/50-default.conf\nPLAY RECAP\n";
        let drifted = parse(output).unwrap();
        assert_eq!(drifted.status, "OUT_OF_SYNC");
        assert_eq!(
            drifted.changed_files,
            ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"]
        );
        let quoted = parse("SYNC_STATUS=\"SYNCED\"\n").unwrap();
        assert_eq!(quoted.status, "SYNCED");
        // Ansible's default callback prints a debug task's msg as JSON.
        let debug = parse(
            "TASK [report] ***\nok: [rsyslog-01] => {\n    \"msg\": \"SYNC_STATUS=OUT_OF_SYNC\"\n}\n\
             ok: [rsyslog-01] => {\n    \"msg\": \"DRIFTED_FILES=/etc/a.conf,/etc/b.conf\"\n}\n",
        )
        .unwrap();
        assert_eq!(debug.status, "OUT_OF_SYNC");
        assert_eq!(debug.changed_files, ["/etc/a.conf", "/etc/b.conf"]);
    }

    #[test]
    fn missing_or_unknown_markers_are_errors() {
        let problem = parse("PLAY RECAP\nok=3\n").unwrap_err();
        assert!(problem.contains("no SYNC_STATUS="), "{problem}");
        let problem = parse("DRIFTED_FILES=a\n").unwrap_err();
        assert!(problem.contains("no SYNC_STATUS="), "{problem}");
        let problem = parse("SYNC_STATUS=SYNCED\nSYNC_STATUS=OUT_OF_SYNC\n").unwrap_err();
        assert!(problem.contains("two different"), "{problem}");
        let problem = parse("SYNC_STATUS=MAYBE\n").unwrap_err();
        assert!(
            problem.contains("neither SYNCED nor OUT_OF_SYNC"),
            "{problem}"
        );
    }
}
