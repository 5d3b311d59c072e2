//! Reads a plain-format SQL dump (pg_dump's, or a backup part) as psql would, without psql:
//! statements split on `;` outside quotes, comments and dollar-quoted bodies; `COPY … FROM
//! stdin;` followed by its data up to `\.`; and the meta-commands pg_dump writes (`\connect`,
//! `\restrict`/`\unrestrict`). Fed line by line, so a dump of any size streams through.

/// One thing to do, with the line it starts on (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// SQL to run as is.
    Statement { sql: String, line: usize },
    /// `COPY … FROM stdin;`: the rows follow as [`Item::CopyData`] items, then [`Item::CopyEnd`].
    CopyStart { sql: String, line: usize },
    /// Rows of the COPY in progress, in COPY text format, each ending in `\n`.
    CopyData(Vec<u8>),
    /// The `\.` line that ends the COPY data.
    CopyEnd { line: usize },
    /// `\connect db` (or `\c`): what follows runs in another database.
    Connect { database: String, line: usize },
}

/// A line the reader cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ScriptError {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Quote {
    None,
    Single { backslash: bool },
    Double,
    Dollar(String),
    Block(u32),
}

/// The streaming reader: push lines, take items.
#[derive(Debug)]
pub struct ScriptReader {
    line: usize,
    buf: String,
    start_line: usize,
    quote: Quote,
    in_copy: bool,
    copy_rows: Vec<u8>,
    /// Where a `;` does not end the statement, as psql decides it: inside parentheses (a rule's
    /// `DO (…; …)`), or inside `BEGIN ATOMIC … END` of a `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    parens: i32,
    begin_depth: u32,
    /// The first letters of the statement's first four words where they are `create`, `or`,
    /// `replace`, `function` or `procedure` (psql's heuristic for routine bodies), and the count.
    words: [u8; 4],
    word_count: usize,
}

/// Rows are handed on in chunks of about this many bytes.
const COPY_CHUNK: usize = 256 * 1024;

impl Default for ScriptReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptReader {
    pub fn new() -> Self {
        ScriptReader {
            line: 0,
            buf: String::new(),
            start_line: 0,
            quote: Quote::None,
            in_copy: false,
            copy_rows: Vec::new(),
            parens: 0,
            begin_depth: 0,
            words: [0; 4],
            word_count: 0,
        }
    }

    /// Feeds one line (with or without its `\n`); returns the items it completes.
    pub fn push_line(&mut self, raw: &[u8], out: &mut Vec<Item>) -> Result<(), ScriptError> {
        self.line += 1;
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        if self.in_copy {
            // COPY's text format escapes a carriage return in a value (`\r`): a raw one ends
            // a line written with CRLF endings.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == b"\\." {
                if !self.copy_rows.is_empty() {
                    out.push(Item::CopyData(std::mem::take(&mut self.copy_rows)));
                }
                out.push(Item::CopyEnd { line: self.line });
                self.in_copy = false;
            } else {
                self.copy_rows.extend_from_slice(line);
                self.copy_rows.push(b'\n');
                if self.copy_rows.len() >= COPY_CHUNK {
                    out.push(Item::CopyData(std::mem::take(&mut self.copy_rows)));
                }
            }
            return Ok(());
        }
        // Outside COPY a carriage return stays, as psql keeps it: inside a string literal it
        // is part of the value (pg_dump --inserts writes values as they are), elsewhere it is
        // white space.
        let text = std::str::from_utf8(line).map_err(|_| ScriptError {
            line: self.line,
            reason: "is not UTF-8 (dumps are read as UTF-8)".into(),
        })?;
        let between_statements = self.quote == Quote::None && strip_comments(&self.buf).trim().is_empty();
        if between_statements && text.starts_with('\\') {
            self.buf.clear();
            return self.meta(text, out);
        }
        if between_statements && text.trim_start().starts_with("--") {
            // Comment lines between statements (pg_dump's headers) carry nothing to run.
            return Ok(());
        }
        if self.buf.trim().is_empty() {
            self.start_line = self.line;
        }
        self.scan(text, out);
        Ok(())
    }

    /// Ends the input: anything unfinished is an error (a truncated dump).
    pub fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), ScriptError> {
        if self.in_copy {
            return Err(ScriptError {
                line: self.line,
                reason: "the dump ends inside COPY data (no \\. line): it is truncated".into(),
            });
        }
        if self.quote != Quote::None {
            return Err(ScriptError {
                line: self.line,
                reason: format!("the dump ends inside a quoted section ({:?})", self.quote),
            });
        }
        if !strip_comments(&self.buf).trim().is_empty() {
            return Err(ScriptError {
                line: self.start_line,
                reason: "the dump ends in an unterminated statement".into(),
            });
        }
        let _ = out;
        Ok(())
    }

    fn meta(&mut self, text: &str, out: &mut Vec<Item>) -> Result<(), ScriptError> {
        let mut words = text.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        match cmd {
            "\\connect" | "\\c" => {
                let db = words.find(|w| !w.starts_with('-')).ok_or_else(|| ScriptError {
                    line: self.line,
                    reason: "\\connect without a database".into(),
                })?;
                out.push(Item::Connect { database: unquote_meta(db), line: self.line });
                Ok(())
            }
            // pg_dump 17.6/16.10/15.14 and later guard scripts with a random key; not SQL.
            "\\restrict" | "\\unrestrict" => Ok(()),
            other => {
                Err(ScriptError { line: self.line, reason: format!("unsupported psql meta-command {other}") })
            }
        }
    }

    fn scan(&mut self, text: &str, out: &mut Vec<Item>) {
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut seg_start = 0;
        while i < bytes.len() {
            let c = bytes[i];
            match &mut self.quote {
                Quote::None => match c {
                    b'\'' => {
                        let e = i > 0
                            && matches!(bytes[i - 1], b'E' | b'e')
                            && (i < 2 || !is_ident(bytes[i - 2]));
                        self.quote = Quote::Single { backslash: e };
                    }
                    b'"' => self.quote = Quote::Double,
                    b'-' if bytes.get(i + 1) == Some(&b'-') => break,
                    b'/' if bytes.get(i + 1) == Some(&b'*') => {
                        self.quote = Quote::Block(1);
                        i += 1;
                    }
                    b'$' if i == 0 || !is_ident(bytes[i - 1]) => {
                        if let Some(end) = text[i + 1..].find('$') {
                            let tag = &text[i + 1..i + 1 + end];
                            if tag.chars().all(|ch| ch.is_alphanumeric() || ch == '_')
                                && !tag.starts_with(|ch: char| ch.is_ascii_digit())
                            {
                                self.quote = Quote::Dollar(tag.to_owned());
                                i += end + 1;
                            }
                        }
                    }
                    b'(' => self.parens += 1,
                    b')' => self.parens -= 1,
                    c if (c.is_ascii_alphabetic() || c == b'_' || c >= 0x80)
                        && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'$')) =>
                    {
                        let end = (i..bytes.len())
                            .find(|&j| !(is_ident(bytes[j]) || bytes[j] == b'$'))
                            .unwrap_or(bytes.len());
                        self.word(&text[i..end]);
                        i = end - 1;
                    }
                    b';' if self.parens <= 0 && self.begin_depth == 0 => {
                        self.buf.push_str(&text[seg_start..=i]);
                        seg_start = i + 1;
                        self.emit(out);
                    }
                    _ => {}
                },
                Quote::Single { backslash } => {
                    if *backslash && c == b'\\' {
                        i += 1;
                    } else if c == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.quote = Quote::None;
                        }
                    }
                }
                Quote::Double => {
                    if c == b'"' {
                        self.quote = Quote::None;
                    }
                }
                Quote::Dollar(tag) => {
                    if c == b'$'
                        && text[i + 1..].starts_with(tag.as_str())
                        && bytes.get(i + 1 + tag.len()) == Some(&b'$')
                    {
                        i += tag.len() + 1;
                        self.quote = Quote::None;
                    }
                }
                Quote::Block(depth) => {
                    if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.quote = Quote::None;
                        }
                    } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        let rest = &text[seg_start..];
        if !rest.trim().is_empty() || !self.buf.is_empty() {
            if self.buf.trim().is_empty() {
                self.start_line = self.line;
            }
            self.buf.push_str(rest);
            self.buf.push('\n');
        }
    }

    /// psql's rule: in `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, outside parentheses, `BEGIN`
    /// opens a block, `CASE` inside one opens another, `END` closes one.
    fn word(&mut self, word: &str) {
        let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
        if self.word_count < self.words.len()
            && ["create", "or", "replace", "function", "procedure"].into_iter().any(is)
        {
            self.words[self.word_count] = word.as_bytes()[0].to_ascii_lowercase();
        }
        self.word_count += 1;
        let w = self.words;
        let routine = w[0] == b'c'
            && (matches!(w[1], b'f' | b'p') || (w[1] == b'o' && w[2] == b'r' && matches!(w[3], b'f' | b'p')));
        if routine && self.parens == 0 {
            if is("begin") || (is("case") && self.begin_depth >= 1) {
                self.begin_depth += 1;
            } else if is("end") && self.begin_depth > 0 {
                self.begin_depth -= 1;
            }
        }
    }

    fn emit(&mut self, out: &mut Vec<Item>) {
        (self.parens, self.begin_depth, self.words, self.word_count) = (0, 0, [0; 4], 0);
        let sql = std::mem::take(&mut self.buf);
        let code = strip_comments(&sql);
        let code = code.trim();
        if code == ";" || code.is_empty() {
            return;
        }
        let line = self.start_line;
        if is_copy_from_stdin(code) {
            out.push(Item::CopyStart { sql: code.to_owned(), line });
            self.in_copy = true;
        } else {
            out.push(Item::Statement { sql: sql.trim().to_owned(), line });
        }
        self.start_line = self.line + 1;
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Removes whole-line `--` comments (pg_dump's headers) so a statement's start is visible.
fn strip_comments(sql: &str) -> String {
    sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
}

fn is_copy_from_stdin(code: &str) -> bool {
    let upper = code.to_ascii_uppercase();
    upper.starts_with("COPY ") && upper.trim_end_matches(';').trim_end().ends_with("FROM STDIN")
}

fn unquote_meta(word: &str) -> String {
    match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => word.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(script: &str) -> Result<Vec<Item>, ScriptError> {
        let mut r = ScriptReader::new();
        let mut out = Vec::new();
        for line in script.split_inclusive('\n') {
            r.push_line(line.as_bytes(), &mut out)?;
        }
        r.finish(&mut out)?;
        Ok(out)
    }

    fn statements(items: &[Item]) -> Vec<&str> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Statement { sql, .. } | Item::CopyStart { sql, .. } => Some(sql.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn routine_bodies_and_parenthesized_rule_actions_are_one_statement() {
        let script = "CREATE FUNCTION app.tax(a numeric) RETURNS numeric LANGUAGE sql\nBEGIN ATOMIC\n SELECT a * 1.2;\n SELECT CASE WHEN a > 0 THEN 1 END;\nEND;\n\
                      create or replace procedure p() begin atomic insert into t values (1); end;\n\
                      CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\n\
                      BEGIN;\nSELECT 'end;' AS \"begin\";\nCOMMIT;\n";
        let items = read(script).unwrap();
        let got = statements(&items);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[0].starts_with("CREATE FUNCTION") && got[0].ends_with("END;"), "{}", got[0]);
        assert!(got[1].ends_with("end;"), "{}", got[1]);
        assert!(got[2].ends_with("VALUES (2));"), "{}", got[2]);
        assert_eq!(&got[3..], ["BEGIN;", "SELECT 'end;' AS \"begin\";", "COMMIT;"]);
    }

    #[test]
    fn splits_what_pg_dump_writes() {
        let script = r#"--
-- PostgreSQL database dump
--
\restrict abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE FUNCTION public.f() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
  RAISE NOTICE 'a; b';  -- not the end
  RETURN NEW;
END $_$;

CREATE TABLE public."we;ird" (
    id integer NOT NULL, "x;y" text DEFAULT E'it\'s; fine' /* ; */
);

COPY public."we;ird" (id, "x;y") FROM stdin;
1	a;b
2	\.x
3	\N
\.

\connect other
\unrestrict abc123
"#;
        let items = read(script).unwrap();
        let s = statements(&items);
        assert_eq!(s.len(), 5, "{s:#?}");
        assert!(s[2].starts_with("CREATE FUNCTION") && s[2].ends_with("END $_$;"));
        assert!(s[3].starts_with("CREATE TABLE") && s[3].ends_with(");"));
        assert_eq!(s[4], "COPY public.\"we;ird\" (id, \"x;y\") FROM stdin;");
        assert!(items.contains(&Item::CopyData(b"1\ta;b\n2\t\\.x\n3\t\\N\n".to_vec())));
        assert!(items.iter().any(|i| matches!(i, Item::CopyEnd { .. })));
        assert!(items.iter().any(|i| matches!(i, Item::Connect { database, .. } if database == "other")));
        let Some(Item::Statement { line, .. }) = items
            .iter()
            .find(|i| matches!(i, Item::Statement { sql, .. } if sql.starts_with("CREATE TABLE")))
        else {
            panic!()
        };
        assert_eq!(*line, 17);
    }

    #[test]
    fn a_carriage_return_inside_a_literal_is_kept_and_crlf_copy_lines_end_at_it() {
        // pg_dump --inserts writes values as they are; COPY escapes them (`\r`), so a raw one
        // there is a CRLF line ending. Found by tests/tests/sql_reader.rs.
        let items =
            read("INSERT INTO t VALUES ('a\r\nb');\r\nCOPY t (a) FROM stdin;\r\nx\\ry\r\n\\.\r\n").unwrap();
        assert_eq!(statements(&items)[0], "INSERT INTO t VALUES ('a\r\nb');");
        let copied: Vec<u8> = items
            .iter()
            .filter_map(|i| if let Item::CopyData(d) = i { Some(d.clone()) } else { None })
            .flatten()
            .collect();
        assert_eq!(copied, b"x\\ry\n");
    }

    #[test]
    fn truncated_dumps_are_errors() {
        assert!(read("COPY t (a) FROM stdin;\n1\n").unwrap_err().reason.contains("truncated"));
        assert!(read("CREATE FUNCTION f() AS $$ begin\n").is_err());
        assert!(read("SELECT 1\n").unwrap_err().reason.contains("unterminated"));
    }

    #[test]
    fn unknown_meta_commands_are_refused_with_their_line() {
        let err = read("SELECT 1;\n\\! rm -rf /\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("\\!"));
    }

    #[test]
    fn nested_block_comments_and_standard_strings() {
        let s = read("SELECT '/*' AS a, 'x\\' /* c /* d */ ; */ ;\nSELECT $1$;\n").unwrap();
        assert_eq!(statements(&s).len(), 2, "{s:?}");
    }
}
