//! CSV cells a spreadsheet opens as text. Descriptions, names and matter titles come
//! from mail, so a cell must never become a formula (`=HYPERLINK(...)`, `@SUM`, a
//! leading tab or CR that some spreadsheets skip before one) or carry control
//! characters that hide text.

use super::ExportError;

/// `text` as a cell: control characters other than tab and newline removed, and a
/// leading `'` when it would start a formula. Only text cells go through this; numbers
/// we format ourselves are written as they are.
pub fn safe(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|&c| !c.is_control() || c == '\t' || c == '\n')
        .collect();
    if kept.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{kept}")
    } else {
        kept
    }
}

/// A CSV writer into memory: comma-separated, every field quoted only when it must be
/// (RFC 4180), CRLF rows as the RFC writes them.
pub fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// Writes one row; a failure here is a bug of ours (memory cannot fail to take bytes).
pub fn row<I, T>(w: &mut csv::Writer<Vec<u8>>, cells: I) -> Result<(), ExportError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    w.write_record(cells)
        .map_err(|e| ExportError::whole("format", format!("could not write a row: {e}")))
}

/// The finished file.
pub fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, ExportError> {
    let bytes = w
        .into_inner()
        .map_err(|e| ExportError::whole("format", format!("could not finish the file: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|e| ExportError::whole("format", format!("the file is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_that_would_start_a_formula_starts_with_a_quote() {
        for bad in [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
        ] {
            let cell = safe(bad);
            assert!(cell.starts_with('\''), "{bad:?} became {cell:?}");
            assert_eq!(&cell[1..], bad);
        }
        // A CR is a control character: removed, and what it hid is still quoted.
        assert_eq!(safe("\r=1+1"), "'=1+1");
        assert_eq!(safe("Call with Bob - 10 min"), "Call with Bob - 10 min");
    }

    #[test]
    fn control_characters_other_than_tab_and_newline_are_removed() {
        assert_eq!(safe("a\u{0}b\u{7}c\u{1b}[31md"), "abc[31md");
        assert_eq!(safe("two\nlines\tand a tab"), "two\nlines\tand a tab");
    }
}
