//! Salt's returns summary (`salt --summary`, `_print_returns_summary` in salt/cli/salt.py):
//! minions targeted, returned, that did not return, and that returned a non-zero retcode.

use crate::output::MinionResult;

const RULE: &str = "-------------------------------------------";

/// The summary block exactly as Salt prints it, leading blank lines included (Salt's
/// `print_cli("\n")`).
pub fn text(results: &[(String, MinionResult)]) -> String {
    let silent =
        results.iter().filter(|(_, r)| !matches!(r, MinionResult::Returned { .. })).count();
    let returned = results.len() - silent;
    let errors = results
        .iter()
        .filter(|(_, r)| matches!(r, MinionResult::Returned { retcode, .. } if *retcode != 0))
        .count();
    format!(
        "\n\n{RULE}\nSummary\n{RULE}\n# of minions targeted: {}\n# of minions returned: {returned}\n\
         # of minions that did not return: {silent}\n# of minions with errors: {errors}\n{RULE}\n",
        results.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_as_salt() {
        let ok = MinionResult::Returned { ret: json!(true), retcode: 0, out: None };
        let failed = MinionResult::Returned { ret: json!("boom"), retcode: 3, out: None };
        let results = vec![
            ("a".to_string(), ok),
            ("b".to_string(), failed),
            ("c".to_string(), MinionResult::NoResponse),
            ("d".to_string(), MinionResult::NotConnected),
        ];
        assert_eq!(
            text(&results),
            "\n\n-------------------------------------------\nSummary\n\
             -------------------------------------------\n# of minions targeted: 4\n\
             # of minions returned: 2\n# of minions that did not return: 2\n\
             # of minions with errors: 1\n-------------------------------------------\n"
        );
        assert!(text(&[]).contains("# of minions targeted: 0\n"));
    }
}
