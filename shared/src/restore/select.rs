//! `restore --tables`: which tables' rows come back, and what that means for each statement of a
//! dump. The schema is restored whole (the tables' types, sequences and functions come with it);
//! rows only for the selected tables; a foreign key from a selected table to one whose rows stay
//! out cannot hold, so it is left out and reported. Works on what the statements say, so plain
//! `pg_dump` files filter the same way as Backstop's backup sets.

use crate::backup::pattern_matches;
use crate::db::quote_ident;
use crate::error::{Error, Result};

/// pg_dump-style table patterns (`schema.table`, `table`, `*` and `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelection {
    patterns: Vec<String>,
}

/// What a statement of the dump means under a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// `COPY` of a table whose rows stay out: skip the statement and its data.
    SkipRows {
        table: String,
    },
    /// A foreign key that would fail on the missing rows of `references`.
    SkipForeignKey {
        constraint: String,
        table: String,
        references: String,
    },
}

impl TableSelection {
    /// `None` for no patterns (everything is restored); an empty pattern is an error.
    pub fn new(patterns: &[String]) -> Result<Option<Self>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        if let Some(bad) = patterns.iter().find(|p| p.trim().is_empty() || p.split('.').count() > 2) {
            return Err(Error::Payload(format!(
                "--tables {bad:?} is not a table pattern (schema.table or table, with * and ?)"
            )));
        }
        Ok(Some(TableSelection { patterns: patterns.to_vec() }))
    }

    pub fn wants(&self, schema: &str, table: &str) -> bool {
        self.patterns.iter().any(|p| pattern_matches(p, schema, table))
    }

    /// Is the table named in SQL (`schema.table`, quoted or not) selected? Names that do not
    /// parse are kept: leaving rows out needs certainty.
    pub fn wants_sql_name(&self, name: &str) -> bool {
        parse_qualified(name).is_none_or(|(s, t)| self.wants(&s, &t))
    }

    /// The patterns that match none of `tables` (`(schema, name)`): a typo, said before
    /// anything is restored.
    pub fn unmatched<'a>(&'a self, tables: &[(String, String)]) -> Vec<&'a str> {
        let matches = |p: &String| tables.iter().any(|(s, t)| pattern_matches(p, s, t));
        self.patterns.iter().filter(|p| !matches(p)).map(String::as_str).collect()
    }

    /// What to do with one statement (`COPY … FROM stdin` or any other).
    pub fn judge(&self, sql: &str) -> Verdict {
        let tokens = tokens(sql, 256);
        let word =
            |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
        if word(0, "copy") {
            if let Some((schema, table, _)) = name_at(&tokens, 1)
                && !self.wants(&schema, &table)
            {
                return Verdict::SkipRows { table: format!("{schema}.{table}") };
            }
            return Verdict::Keep;
        }
        let Some(AddConstraint { table: (schema, table), name, references: Some((rs, rt)), .. }) =
            add_constraint(&tokens)
        else {
            return Verdict::Keep;
        };
        if self.wants(&schema, &table) && !self.wants(&rs, &rt) {
            return Verdict::SkipForeignKey {
                constraint: name,
                table: format!("{schema}.{table}"),
                references: format!("{rs}.{rt}"),
            };
        }
        Verdict::Keep
    }
}

/// The tables a post-data statement locks, where it is one that can run beside others on
/// other tables: `CREATE [UNIQUE] INDEX … ON [ONLY] t`, and `ALTER TABLE [ONLY] t ADD
/// CONSTRAINT …` (with the referenced table of a foreign key). `None` for anything else.
pub fn parallel_tables(sql: &str) -> Option<Vec<(String, String)>> {
    let tokens = tokens(sql, 256);
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    if word(0, "create") {
        // CREATE [UNIQUE] INDEX name ON [ONLY] t
        let at = if word(1, "unique") { 2 } else { 1 };
        if !word(at, "index") || !word(at + 2, "on") {
            return None;
        }
        let table = if word(at + 3, "only") { at + 4 } else { at + 3 };
        let (schema, name, _) = name_at(&tokens, table)?;
        return Some(vec![(schema, name)]);
    }
    let c = add_constraint(&tokens)?;
    if c.references.is_none() && !["primary", "unique", "exclude", "check"].contains(&c.kind.as_str()) {
        return None;
    }
    Some(std::iter::once(c.table).chain(c.references).collect())
}

/// `ALTER TABLE ONLY s.t ADD CONSTRAINT c FOREIGN KEY …;` as two statements: the same with
/// `NOT VALID` (no check, brief locks) and `ALTER TABLE ONLY s.t VALIDATE CONSTRAINT c;`
/// (the check, locking only `s.t` against other work). `None` for anything else: a key
/// already `NOT VALID` (it stays so), a partitioned table's (written without `ONLY`; it cannot
/// be added `NOT VALID` before PostgreSQL 18), an unqualified name.
pub fn split_foreign_key(sql: &str) -> Option<(String, String)> {
    let body = sql.trim_end().strip_suffix(';')?.trim_end();
    let tokens = tokens(body, 256);
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    let c = add_constraint(&tokens)?;
    let qualified = tokens.get(4) == Some(&Token::Punct('.'));
    let mut last = body.rsplit(char::is_whitespace).filter(|w| !w.is_empty());
    let not_valid = last.next().is_some_and(|w| w.eq_ignore_ascii_case("valid"))
        && last.next().is_some_and(|w| w.eq_ignore_ascii_case("not"));
    if c.kind != "foreign" || !word(2, "only") || !qualified || not_valid || body.contains(';') {
        return None;
    }
    let (schema, table) = &c.table;
    Some((
        format!("{body} NOT VALID;"),
        format!(
            "ALTER TABLE ONLY {}.{} VALIDATE CONSTRAINT {};",
            quote_ident(schema),
            quote_ident(table),
            quote_ident(&c.name)
        ),
    ))
}

/// `ALTER TABLE [ONLY] t ADD CONSTRAINT c <kind> …`, as pg_dump and the native engine write it.
struct AddConstraint {
    table: (String, String),
    name: String,
    /// The first word after the name (`primary`, `foreign`, `check`, …), lower case.
    kind: String,
    /// A foreign key's referenced table.
    references: Option<(String, String)>,
}

fn add_constraint(tokens: &[Token]) -> Option<AddConstraint> {
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    if !(word(0, "alter") && word(1, "table")) {
        return None;
    }
    let at = if word(2, "only") { 3 } else { 2 };
    let (schema, table, next) = name_at(tokens, at)?;
    if !(word(next, "add") && word(next + 1, "constraint")) {
        return None;
    }
    let name = match tokens.get(next + 2) {
        Some(Token::Word(w) | Token::Quoted(w)) => w.clone(),
        _ => return None,
    };
    let Some(Token::Word(kind)) = tokens.get(next + 3) else { return None };
    let references = if kind == "foreign" {
        let refs = (next + 4..tokens.len()).find(|&i| word(i, "references"))?;
        Some(name_at(tokens, refs + 1).map(|(s, t, _)| (s, t))?)
    } else {
        None
    };
    Some(AddConstraint { table: (schema, table), name, kind: kind.clone(), references })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word, folded to lower case as the server folds it.
    Word(String),
    Quoted(String),
    Punct(char),
}

/// The first `limit` tokens of `sql`: words, quoted identifiers, punctuation. String
/// literals and comments are skipped (nothing here needs them).
fn tokens(sql: &str, limit: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() >= limit {
            break;
        }
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut name = String::new();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            name.push('"');
                        } else {
                            break;
                        }
                    } else {
                        name.push(c);
                    }
                }
                out.push(Token::Quoted(name));
            }
            '\'' => {
                while let Some(c) = chars.next() {
                    if c == '\'' && chars.next_if_eq(&'\'').is_none() {
                        break;
                    }
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_lowercase().collect::<String>();
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$') {
                    word.extend(c.to_lowercase());
                }
                out.push(Token::Word(word));
            }
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

/// `schema.table` or `table` (in `public`) at `at`: the parts and the index after the name.
fn name_at(tokens: &[Token], at: usize) -> Option<(String, String, usize)> {
    let part = |i: usize| match tokens.get(i) {
        Some(Token::Word(w) | Token::Quoted(w)) => Some(w.clone()),
        _ => None,
    };
    let first = part(at)?;
    if tokens.get(at + 1) == Some(&Token::Punct('.')) {
        Some((first, part(at + 2)?, at + 3))
    } else {
        Some(("public".into(), first, at + 1))
    }
}

/// `schema.table` as SQL writes it (quoted or not) → its two names.
pub fn parse_qualified(name: &str) -> Option<(String, String)> {
    let tokens = tokens(name, 4);
    let (schema, table, end) = name_at(&tokens, 0)?;
    (end == tokens.len()).then_some((schema, table))
}

/// Whether to run `sql` under `--tables`: a foreign key to rows that were not restored is left
/// out, and said in `skipped`.
pub fn keep(selection: Option<&TableSelection>, sql: &str, skipped: &mut Vec<String>) -> bool {
    match selection.map_or(Verdict::Keep, |s| s.judge(sql)) {
        Verdict::SkipForeignKey { constraint, table, references } => {
            tracing::warn!(%constraint, %table, %references, "foreign key left out: its rows were not restored");
            skipped.push(format!(
                "{constraint} on {table}: references {references}, whose rows were not restored"
            ));
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(patterns: &[&str]) -> TableSelection {
        TableSelection::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap().unwrap()
    }

    #[test]
    fn copy_statements_of_other_tables_are_skipped() {
        let s = select(&["app.orders", "audit_*"]);
        assert_eq!(s.judge("COPY app.orders (id, total) FROM stdin;"), Verdict::Keep);
        assert_eq!(s.judge("COPY public.audit_2026 (id) FROM stdin;"), Verdict::Keep);
        assert_eq!(
            s.judge("COPY app.\"Order Items\" (id) FROM stdin;"),
            Verdict::SkipRows { table: "app.Order Items".into() }
        );
        assert_eq!(
            s.judge("copy APP.Customers from stdin;"),
            Verdict::SkipRows { table: "app.customers".into() }
        );
        assert_eq!(s.judge("CREATE TABLE app.customers (id int);"), Verdict::Keep);
    }

    #[test]
    fn foreign_keys_to_tables_left_out_are_skipped() {
        let s = select(&["app.orders"]);
        let fk = "ALTER TABLE ONLY app.orders\n    ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) \
                  REFERENCES app.customers(id) ON DELETE CASCADE;";
        assert_eq!(
            s.judge(fk),
            Verdict::SkipForeignKey {
                constraint: "orders_customer_fkey".into(),
                table: "app.orders".into(),
                references: "app.customers".into()
            }
        );
        // Into a selected table, or from a table left empty: it holds.
        assert_eq!(
            s.judge(
                "ALTER TABLE ONLY app.orders ADD CONSTRAINT self FOREIGN KEY (p) REFERENCES app.orders(id);"
            ),
            Verdict::Keep
        );
        assert_eq!(
            s.judge("ALTER TABLE app.lines ADD CONSTRAINT l FOREIGN KEY (o) REFERENCES app.orders(id);"),
            Verdict::Keep
        );
        assert_eq!(
            s.judge("ALTER TABLE ONLY app.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);"),
            Verdict::Keep
        );
        let quoted = "ALTER TABLE ONLY \"App\".\"Orders\" ADD CONSTRAINT \"x\"\"y\" FOREIGN KEY (a) \
                      REFERENCES \"App\".\"Cust\"(id);";
        assert_eq!(
            select(&["App.Orders"]).judge(quoted),
            Verdict::SkipForeignKey {
                constraint: "x\"y".into(),
                table: "App.Orders".into(),
                references: "App.Cust".into()
            }
        );
    }

    #[test]
    fn names_and_patterns() {
        assert_eq!(parse_qualified("app.\"Order Items\""), Some(("app".into(), "Order Items".into())));
        assert_eq!(parse_qualified("Orders"), Some(("public".into(), "orders".into())));
        assert_eq!(parse_qualified("a.b.c"), None);
        let s = select(&["app.orders", "nope"]);
        let tables = [("app".to_string(), "orders".to_string())];
        assert_eq!(s.unmatched(&tables), vec!["nope"]);
        assert!(TableSelection::new(&[]).unwrap().is_none());
        assert!(TableSelection::new(&[" ".into()]).is_err());
        assert!(TableSelection::new(&["a.b.c".into()]).is_err());
    }
}
