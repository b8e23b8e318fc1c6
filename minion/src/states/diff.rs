//! File differences as Salt shows them in `changes.diff`: Python's
//! `difflib.unified_diff` (3 lines of context, `---`/`+++` headers without file names,
//! `@@ -a,b +c,d @@` hunks) over a longest-common-subsequence alignment, and Salt's wording
//! when either side is binary.

/// Above this many cells the alignment gives up and replaces the differing middle whole.
const MAX_CELLS: usize = 4_000_000;
const CONTEXT: usize = 3;
/// Lines of both files past which no diff is made, only a line saying how long each is.
const MAX_DIFF_LINES: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tag {
    Equal,
    Replace,
    Delete,
    Insert,
}

/// `(tag, a_start, a_end, b_start, b_end)`, as `SequenceMatcher.get_opcodes`.
type Op = (Tag, usize, usize, usize, usize);

/// Salt's `get_diff(old, new, show_filenames=False)`: the unified diff of two files'
/// lines, or "Replace binary file" (…) when either is binary.
pub(crate) fn file_diff(old: &[u8], new: &[u8]) -> String {
    match (is_text(old), is_text(new)) {
        (false, false) => return "Replace binary file".into(),
        (false, true) => return "Replace binary file with text file".into(),
        (true, false) => return "Replace text file with binary file".into(),
        (true, true) => {}
    }
    // A file of millions of short lines (one a user controls, in their directory) made a
    // line table and a diff of gigabytes, and a return no frame could carry.
    let lines = |data: &[u8]| data.iter().filter(|&&b| b == b'\n').count();
    let (a_lines, b_lines) = (lines(old), lines(new));
    if a_lines + b_lines > MAX_DIFF_LINES {
        return format!(
            "Replace text file of {a_lines} lines with text file of {b_lines} lines (too long \
             to show a diff)"
        );
    }
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    unified(&a, &b, "\n").concat()
}

/// Salt's `files.is_text`: no NUL in the first 512 bytes, and UTF-8 or mostly printable.
pub(crate) fn is_text(data: &[u8]) -> bool {
    let block = &data[..data.len().min(512)];
    if block.contains(&0) {
        return false;
    }
    if block.is_empty() || std::str::from_utf8(block).is_ok() {
        return true;
    }
    let text = |b: &u8| (32..127).contains(b) || b"\n\r\t\x0c\x08".contains(b);
    let nontext = block.iter().filter(|b| !text(b)).count();
    nontext as f64 / block.len() as f64 <= 0.30
}

/// `difflib.unified_diff(a, b, lineterm=lineterm)` with empty file names: the pieces Python
/// yields (headers end in `lineterm`, content lines are the lines as given).
pub(crate) fn unified(a: &[&str], b: &[&str], lineterm: &str) -> Vec<String> {
    let mut out = Vec::new();
    for group in grouped(opcodes(a, b), CONTEXT) {
        if out.is_empty() {
            out.push(format!("--- {lineterm}"));
            out.push(format!("+++ {lineterm}"));
        }
        let (first, last) = (group[0], group[group.len() - 1]);
        out.push(format!(
            "@@ -{} +{} @@{lineterm}",
            range(first.1, last.2),
            range(first.3, last.4)
        ));
        for (tag, i1, i2, j1, j2) in group {
            if tag == Tag::Equal {
                out.extend(a[i1..i2].iter().map(|l| format!(" {l}")));
                continue;
            }
            if matches!(tag, Tag::Replace | Tag::Delete) {
                out.extend(a[i1..i2].iter().map(|l| format!("-{l}")));
            }
            if matches!(tag, Tag::Replace | Tag::Insert) {
                out.extend(b[j1..j2].iter().map(|l| format!("+{l}")));
            }
        }
    }
    out
}

/// difflib's `_format_range_unified`.
fn range(start: usize, stop: usize) -> String {
    let length = stop - start;
    match length {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{length}", start + 1),
    }
}

/// The aligned blocks as opcodes: common prefix and suffix, an LCS of the middle.
fn opcodes(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix =
        a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut matches: Vec<(usize, usize)> = (0..prefix).map(|i| (i, i)).collect();
    matches.extend(lcs(a_mid, b_mid).into_iter().map(|(i, j)| (i + prefix, j + prefix)));
    matches.extend((0..suffix).map(|k| (a.len() - suffix + k, b.len() - suffix + k)));

    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut k = 0;
    while k < matches.len() {
        let (mi, mj) = matches[k];
        push_gap(&mut ops, i, mi, j, mj);
        let mut len = 1;
        while k + len < matches.len() && matches[k + len] == (mi + len, mj + len) {
            len += 1;
        }
        ops.push((Tag::Equal, mi, mi + len, mj, mj + len));
        i = mi + len;
        j = mj + len;
        k += len;
    }
    push_gap(&mut ops, i, a.len(), j, b.len());
    ops
}

fn push_gap(ops: &mut Vec<Op>, i1: usize, i2: usize, j1: usize, j2: usize) {
    let tag = match (i1 < i2, j1 < j2) {
        (true, true) => Tag::Replace,
        (true, false) => Tag::Delete,
        (false, true) => Tag::Insert,
        (false, false) => return,
    };
    ops.push((tag, i1, i2, j1, j2));
}

/// Matched index pairs of a longest common subsequence (dynamic programming; when the
/// table would be too large, no matches: the middle is replaced whole).
fn lcs(a: &[&str], b: &[&str]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 || n.saturating_mul(m) > MAX_CELLS {
        return Vec::new();
    }
    // table[i][j]: LCS length of a[i..] and b[j..].
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i] == b[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut pairs = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// `SequenceMatcher.get_grouped_opcodes(n)`: hunks with `n` lines of context.
fn grouped(mut codes: Vec<Op>, n: usize) -> Vec<Vec<Op>> {
    if codes.is_empty() {
        codes.push((Tag::Equal, 0, 1, 0, 1));
    }
    if let Some(first) = codes.first_mut() {
        if first.0 == Tag::Equal {
            let (_, i1, i2, j1, j2) = *first;
            *first =
                (Tag::Equal, i1.max(i2.saturating_sub(n)), i2, j1.max(j2.saturating_sub(n)), j2);
        }
    }
    if let Some(last) = codes.last_mut() {
        if last.0 == Tag::Equal {
            let (_, i1, i2, j1, j2) = *last;
            *last = (Tag::Equal, i1, i2.min(i1 + n), j1, j2.min(j1 + n));
        }
    }
    let mut groups = Vec::new();
    let mut group = Vec::new();
    for (tag, mut i1, i2, mut j1, j2) in codes {
        if tag == Tag::Equal && i2 - i1 > 2 * n {
            group.push((tag, i1, i2.min(i1 + n), j1, j2.min(j1 + n)));
            groups.push(std::mem::take(&mut group));
            i1 = i1.max(i2.saturating_sub(n));
            j1 = j1.max(j2.saturating_sub(n));
        }
        group.push((tag, i1, i2, j1, j2));
    }
    let only_equal = group.len() == 1 && group[0].0 == Tag::Equal;
    if !group.is_empty() && !only_equal {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(old: &str, new: &str, want: &str) {
        assert_eq!(file_diff(old.as_bytes(), new.as_bytes()), want, "{old:?} -> {new:?}");
    }

    #[test]
    fn unified_diffs_match_python_difflib() {
        check("a\n", "a\n", "");
        let long = "\n".repeat(MAX_DIFF_LINES);
        let text = "Replace text file of 200000 lines with text file of 1 lines (too long to \
                    show a diff)";
        assert_eq!(file_diff(long.as_bytes(), b"x\n"), text);
        check("a\n", "a\nb\n", "--- \n+++ \n@@ -1 +1,2 @@\n a\n+b\n");
        check("", "x\n", "--- \n+++ \n@@ -0,0 +1 @@\n+x\n");
        check("a\nb\nc\n", "a\nB\nc\n", "--- \n+++ \n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
        // Two changes far apart make two hunks with three lines of context each.
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                18 => "eighteen\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        check(
            &old,
            &new,
            "--- \n+++ \n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n\
             @@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n",
        );
        // No final newline: the line runs into the next, as in Python.
        check("a", "b", "--- \n+++ \n@@ -1 +1 @@\n-a+b");
    }

    #[test]
    fn binary_files_are_named_not_diffed() {
        assert_eq!(file_diff(b"\0\x01", b"text\n"), "Replace binary file with text file");
        assert_eq!(file_diff(b"text\n", b"\0"), "Replace text file with binary file");
        assert_eq!(file_diff(b"\0", b"\0\0"), "Replace binary file");
    }

    #[test]
    fn append_style_diff_joins_with_newlines() {
        // Salt's file.append: "\n".join(unified_diff(old_lines, new_lines)).
        let got = unified(&["a"], &["a", "b"], "\n").join("\n");
        assert_eq!(got, "--- \n\n+++ \n\n@@ -1 +1,2 @@\n\n a\n+b");
    }
}
