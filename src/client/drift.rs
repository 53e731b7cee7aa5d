//! The seeds' drift check prints `SYNC_STATUS=SYNCED|OUT_OF_SYNC` and
//! `DRIFTED_FILES=a,b,c` among Ansible's own output; `--drift-output` reads those two lines.

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
    let mut status = None;
    let mut files = None;
    for line in output.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("SYNC_STATUS=") {
            status = Some(value.trim().trim_matches('"').to_owned());
        } else if let Some(value) = line.strip_prefix("DRIFTED_FILES=") {
            files = Some(
                value
                    .trim()
                    .trim_matches('"')
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
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
    }

    #[test]
    fn missing_or_unknown_markers_are_errors() {
        let problem = parse("PLAY RECAP\nok=3\n").unwrap_err();
        assert!(problem.contains("no SYNC_STATUS="), "{problem}");
        let problem = parse("DRIFTED_FILES=a\n").unwrap_err();
        assert!(problem.contains("no SYNC_STATUS="), "{problem}");
        let problem = parse("SYNC_STATUS=MAYBE\n").unwrap_err();
        assert!(
            problem.contains("neither SYNCED nor OUT_OF_SYNC"),
            "{problem}"
        );
    }
}
