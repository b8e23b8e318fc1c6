//! The results table (Markdown) and its place in BENCHMARKS.md.

use crate::scenarios::Row;
use std::fs;
use std::path::Path;

/// The table, one row per number, with the command that reproduces it.
pub fn table(rows: &[Row], quick: bool) -> String {
    let mut out = String::new();
    if quick {
        out.push_str("(quick run: small sizes and few repetitions; not the published numbers)\n\n");
    }
    out.push_str("| Measurement | Result | Target | Met | Command |\n|---|---|---|---|---|\n");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {met} | `scripts/bench --only {}` |\n",
            row.what, row.value, row.target, row.only
        ));
    }
    out
}

/// Replaces what lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in `path`.
pub fn write(path: &Path, table: &str, micro: Option<&str>) -> Result<(), String> {
    let mut text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    text = splice(&text, "bench", table)?;
    if let Some(micro) = micro {
        text = splice(&text, "micro", &format!("```text\n{}\n```\n", micro.trim_end()))?;
    }
    fs::write(path, text).map_err(|e| e.to_string())
}

fn splice(text: &str, name: &str, body: &str) -> Result<String, String> {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Err(format!("no {begin:?} … {end:?} markers"));
    };
    let b = b + begin.len();
    if e < b {
        return Err(format!("{end:?} comes before {begin:?}"));
    }
    Ok(format!("{}{body}{}", &text[..b], &text[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_markers_only() {
        let text = "notes\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nmore notes\n";
        assert_eq!(
            splice(text, "bench", "new\n").unwrap(),
            "notes\n<!-- bench:begin -->\nnew\n<!-- bench:end -->\nmore notes\n"
        );
        assert!(splice("no markers", "bench", "x").is_err());
    }
}
