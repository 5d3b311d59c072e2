//! The schema, read from the catalogs and written as SQL with the server's own `pg_get_*def`,
//! `format_type` and `pg_get_expr`, so the text is right for whatever version the server is.
//!
//! Every dumped object becomes a [`Node`]: its SQL, its section (before or after the data), the
//! catalog objects it creates (its keys) and, through `pg_depend`, what it needs. The nodes are
//! then sorted (see `order`). An object kind found in the database that this module cannot write
//! fails the backup with the object's name: nothing is skipped silently.
//!
//! All queries run with `search_path = ''` so every name the server prints is schema-qualified.
//!
//! One file per object family, each adding its readers to [`Reader`]: `support` (what cannot be
//! written yet), `types` (schemas, extensions, collations, types), `routines`, `relations`
//! (sequences, tables, views, large objects), `constraints` (everything after the data),
//! `privileges` (comments, owners, grants). This file holds the nodes and their ordering.

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{Client, Row};

use super::order;
use crate::error::{Error, Result};

mod constraints;
mod foreign;
mod languages;
mod operators;
mod privileges;
mod relations;
mod replication;
mod routines;
mod support;
mod text_search;
mod types;

pub use support::{refusal, unsupported};

/// Catalog OIDs (fixed since PostgreSQL 7; `pg_depend` and `pg_description` refer to them).
const PG_CLASS: u32 = 1259;
const PG_TYPE: u32 = 1247;
const PG_PROC: u32 = 1255;
const PG_ATTRDEF: u32 = 2604;
const PG_CONSTRAINT: u32 = 2606;
const PG_REWRITE: u32 = 2618;
const PG_TRIGGER: u32 = 2620;
const PG_NAMESPACE: u32 = 2615;
const PG_EXTENSION: u32 = 3079;
const PG_POLICY: u32 = 3256;
const PG_STATISTIC_EXT: u32 = 3381;
const PG_LARGEOBJECT: u32 = 2613;
const PG_COLLATION: u32 = 3456;
const PG_TS_PARSER: u32 = 3601;
const PG_TS_DICT: u32 = 3600;
const PG_TS_TEMPLATE: u32 = 3764;
const PG_TS_CONFIG: u32 = 3602;
const PG_PUBLICATION: u32 = 6104;
const PG_PUBLICATION_REL: u32 = 6106;
const PG_PUBLICATION_NAMESPACE: u32 = 6237;
const PG_EVENT_TRIGGER: u32 = 3466;
const PG_CAST: u32 = 2605;
const PG_FOREIGN_DATA_WRAPPER: u32 = 2328;
const PG_FOREIGN_SERVER: u32 = 1417;
const PG_USER_MAPPING: u32 = 1418;
const PG_OPERATOR: u32 = 2617;
const PG_OPFAMILY: u32 = 2753;
const PG_OPCLASS: u32 = 2616;
const PG_AMOP: u32 = 2602;
const PG_AMPROC: u32 = 2603;
const PG_LANGUAGE: u32 = 2612;
const PG_AM: u32 = 2601;
const PG_CONVERSION: u32 = 2607;
const PG_TRANSFORM: u32 = 3576;

/// The lowest OID of an object made after initdb: anything below is built in.
const FIRST_NORMAL_OID: u32 = 16384;

/// How a statement names the routine whose oid is `oid` (SQL): schema, name and its identity
/// arguments, OUT arguments of procedures included (they are part of a procedure's signature:
/// without them two procedures can share a name). A zero-argument aggregate is `name(*)` where
/// `star` (ALTER and COMMENT ON AGGREGATE), `name()` elsewhere (GRANT ON FUNCTION).
fn routine_identity(oid: &str, star: bool) -> String {
    let empty = if star { "case when p.prokind = 'a' then '*' else '' end" } else { "''" };
    format!(
        "(select format('%I.%I(%s)', rn.nspname, p.proname, coalesce(nullif(pg_get_function_identity_arguments(p.oid), ''), {empty}))
          from pg_proc p join pg_namespace rn on rn.oid = p.pronamespace where p.oid = {oid})"
    )
}

/// `pg_namespace` filter for user schemas, for queries aliasing it as `n`.
const USER_SCHEMA: &str = "n.nspname !~ '^pg_' and n.nspname <> 'information_schema'";

/// A catalog object: `(catalog oid, object oid)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey(pub u32, pub u32);

/// Where a node goes: before the data or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    PreData,
    PostData,
}

/// One statement (or a few that belong together) of the schema.
#[derive(Debug, Clone)]
pub struct Node {
    pub section: Section,
    /// Order among ready nodes (lower first), so the output reads like pg_dump's.
    pub rank: u32,
    /// `table public.orders`, for messages.
    pub label: String,
    pub sql: String,
    /// The catalog objects this node creates; dependencies on any of them point here.
    pub keys: Vec<ObjKey>,
    /// Dependencies `pg_depend` does not record (an object's schema, the object a comment is on).
    pub needs: Vec<ObjKey>,
    /// The catalog kind, counted in the manifest (`table`, `index`, …); `None` for statements
    /// that only modify another node's object (comments, owners, grants).
    pub kind: Option<&'static str>,
    /// `REFRESH MATERIALIZED VIEW` of this materialized view (`pg_class` oid).
    pub refreshes: Option<u32>,
    /// A validated foreign key: `(table, referenced table, the table is partitioned)`.
    pub references: Option<(u32, u32, bool)>,
    /// The definition of a type whose shell another node creates (`pg_type` oid): what the
    /// type needs, it needs; what needs the type (but its own functions) needs this.
    pub completes: Option<u32>,
}

impl Node {
    fn new(section: Section, rank: u32, kind: &'static str, label: String, sql: String) -> Self {
        Node { kind: Some(kind), ..Node::statement(section, rank, label, sql) }
    }

    fn extra(section: Section, rank: u32, label: String, sql: String, on: ObjKey) -> Self {
        Node { needs: vec![on], ..Node::statement(section, rank, label, sql) }
    }

    /// SQL that creates nothing and needs nothing yet.
    fn statement(section: Section, rank: u32, label: String, sql: String) -> Self {
        Node {
            section,
            rank,
            label,
            sql,
            keys: Vec::new(),
            needs: Vec::new(),
            kind: None,
            refreshes: None,
            references: None,
            completes: None,
        }
    }

    fn keys(mut self, keys: impl IntoIterator<Item = ObjKey>) -> Self {
        self.keys.extend(keys);
        self
    }

    fn needs(mut self, needs: impl IntoIterator<Item = ObjKey>) -> Self {
        self.needs.extend(needs);
        self
    }
}

/// A table whose rows go into a data part.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// Schema-qualified and quoted.
    pub qualified: String,
    /// The columns COPY reads and writes (generated columns excluded), quoted, comma-separated.
    pub columns: String,
    pub bytes: i64,
    pub rows_estimate: Option<i64>,
    /// Pages of the main fork (for splitting a large table into parts).
    pub pages: i64,
    /// For one part of a split table: the pages `[first, end)` it reads (`None`: to the end).
    pub chunk: Option<(i64, Option<i64>)>,
    /// An extension's configuration table: the extension's condition (`WHERE …`) picking the
    /// rows made after `CREATE EXTENSION` (PostGIS's `spatial_ref_sys`, say), which come back
    /// on top of the rows the extension makes; `Some("")`: every row. Never split.
    pub filter: Option<String>,
}

impl DataTable {
    /// `COPY {table} ({columns})`: the restore statement's head.
    pub fn copy_head(&self) -> String {
        if self.columns.is_empty() {
            format!("COPY {}", self.qualified)
        } else {
            format!("COPY {} ({})", self.qualified, self.columns)
        }
    }

    /// The dump statement: the whole table, or one range of its pages (a TID range scan), which
    /// yields the same rows in the same form.
    pub fn copy_out(&self) -> String {
        if let Some(filter) = self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            return format!("COPY (SELECT {} FROM ONLY {} {filter}) TO STDOUT", self.columns, self.qualified);
        }
        match self.chunk {
            None => format!("{} TO STDOUT", self.copy_head()),
            Some((first, end)) => {
                let upper = end.map(|e| format!(" AND ctid < '({e},0)'::tid")).unwrap_or_default();
                format!(
                    "COPY (SELECT {} FROM ONLY {} WHERE ctid >= '({first},0)'::tid{upper}) TO STDOUT",
                    self.columns, self.qualified
                )
            }
        }
    }

    /// This table as `n` parts over its pages (the last one open-ended, so pages added since
    /// the size was read are still covered).
    pub fn split(&self, n: i64) -> Vec<DataTable> {
        let n = n.max(1);
        let step = (self.pages / n).max(1);
        (0..n)
            .map(|i| {
                let end = (i + 1 < n).then_some((i + 1) * step);
                DataTable { chunk: Some((i * step, end)), ..self.clone() }
            })
            .collect()
    }
}

/// What to leave out, for restores into a server whose roles differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    pub no_owner: bool,
    pub no_privileges: bool,
    /// Leave large objects out, with their comments and grants (a schema-only dump, as
    /// pg_dump's).
    pub no_large_objects: bool,
}

/// The schema of one database, ready to write.
#[derive(Debug, Clone)]
pub struct Schema {
    pub pre_data: String,
    pub post_data: String,
    /// Tables with rows to dump, largest first.
    pub tables: Vec<DataTable>,
    /// Large objects in the snapshot (0 when left out). They are not nodes: their part
    /// streams them from `pg_largeobject_metadata` (see `native::write_large_objects`), so a
    /// database with millions of them is read in bounded memory.
    pub large_objects: u64,
    /// Objects by kind (`table`, `index`, `function`, …).
    pub counts: BTreeMap<String, usize>,
    /// What was written differently from the catalog so that the backup restores.
    pub warnings: Vec<String>,
}

/// Reads the catalogs of `client`'s database (inside the snapshot's transaction) and writes
/// the schema. `database` names the database in errors.
///
/// `has_data` says whose rows the backup holds: a foreign key from a table with rows to one
/// without is written `NOT VALID` (its check would fail the restore), and said in `warnings`.
pub async fn read(
    client: &Client,
    database: &str,
    options: SchemaOptions,
    has_data: &(dyn Fn(&DataTable) -> bool + Sync),
) -> Result<Schema> {
    let mut reader = Reader::new(client, database);
    reader.large_objects = !options.no_large_objects;
    reader.check_supported().await?;
    let members = reader.extension_members().await?;
    reader.members = members.iter().map(|(m, _)| *m).collect();
    reader.members.extend(reader.implicit().await?);
    reader.configuration = reader.extension_configuration().await?;
    reader.schemas().await?;
    let extensions = reader.extensions().await?;
    reader.collations().await?;
    reader.types().await?;
    reader.functions().await?;
    reader.languages_and_methods().await?;
    reader.casts().await?;
    reader.operators().await?;
    reader.text_search().await?;
    reader.foreign_data().await?;
    let sequences = reader.sequences().await?;
    reader.relations(&sequences).await?;
    reader.constraints_and_indexes().await?;
    reader.triggers_rules_policies().await?;
    reader.publications().await?;
    reader.event_triggers().await?;
    let large_objects = if options.no_large_objects { 0 } else { reader.count_large_objects().await? };
    reader.comments().await?;
    if !options.no_owner {
        reader.owners(&sequences).await?;
    }
    if !options.no_privileges {
        reader.privileges().await?;
    }
    reader.database_settings(!options.no_owner).await?;
    let depend = reader.depend().await?;
    let Reader { mut nodes, mut tables, .. } = reader;

    // Objects of an extension come with `CREATE EXTENSION`: depending on one means depending on
    // the extension.
    let mut aliases: HashMap<ObjKey, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for k in &node.keys {
            aliases.entry(*k).or_insert(i);
        }
    }
    for (member, ext) in &members {
        if let Some(&i) = extensions.get(ext) {
            aliases.entry(*member).or_insert(i);
        }
    }
    let mut deps: Vec<Vec<usize>> =
        nodes.iter().map(|n| n.needs.iter().filter_map(|k| aliases.get(k).copied()).collect()).collect();
    let owned_sequences: HashSet<u32> = sequences.values().filter(|s| s.owned).map(|s| s.oid).collect();
    let completions: HashMap<ObjKey, usize> =
        nodes.iter().enumerate().filter_map(|(i, n)| Some((ObjKey(PG_TYPE, n.completes?), i))).collect();
    for (dependent, referenced, deptype) in depend {
        // What a type needs (its functions), its definition needs, not its shell.
        let dependent_node = completions.get(&dependent).or(aliases.get(&dependent));
        let (Some(&a), Some(&b)) = (dependent_node, aliases.get(&referenced)) else { continue };
        // A sequence OWNED BY a column depends on its table, while the column's default
        // depends on the sequence: the ownership is its own statement, after both.
        if deptype == 'a' && dependent.0 == PG_CLASS && owned_sequences.contains(&dependent.1) {
            continue;
        }
        deps[a].push(b);
    }
    complete_shells(&completions, &aliases, &mut deps);
    refresh_after_sources(&nodes, &aliases, &mut deps);
    let warnings = keys_to_rows_left_out(database, &mut nodes, &tables, has_data)?;
    let ranks: Vec<u32> =
        nodes.iter().map(|n| n.rank + if n.section == Section::PostData { 1000 } else { 0 }).collect();
    let sorted = order::sort(&ranks, &deps).map_err(|stuck| Error::Unsupported {
        database: database.to_owned(),
        reason: format!(
            "the schema's dependencies form a cycle the native engine cannot order: {}",
            stuck
                .iter()
                .take(8)
                .map(|&i| format!(
                    "{} (after {})",
                    nodes[i].label,
                    deps[i].iter().map(|&d| nodes[d].label.as_str()).collect::<Vec<_>>().join(" + ")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;

    // A node needing something that comes after the data moves there too; a table cannot.
    let mut section: Vec<Section> = nodes.iter().map(|n| n.section).collect();
    for &i in &sorted {
        if let Some(latest) = deps[i].iter().map(|&d| section[d]).max()
            && latest > section[i]
        {
            if matches!(nodes[i].kind, Some("table" | "foreign table")) {
                return Err(Error::Unsupported {
                    database: database.to_owned(),
                    reason: format!(
                        "{} depends on an object that can only be created after the data ({})",
                        nodes[i].label,
                        deps[i]
                            .iter()
                            .filter(|&&d| section[d] == Section::PostData)
                            .map(|&d| nodes[d].label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            section[i] = latest;
        }
    }

    let mut counts = BTreeMap::new();
    let (mut pre_data, mut post_data) = (String::new(), String::new());
    for &i in &sorted {
        let node = &mut nodes[i];
        if let Some(kind) = node.kind {
            *counts.entry(kind.to_owned()).or_insert(0) += 1;
        }
        let out = if section[i] == Section::PreData { &mut pre_data } else { &mut post_data };
        out.push_str(&node.sql);
        out.push_str("\n\n");
    }
    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.qualified.cmp(&b.qualified)));
    counts.insert("large object".into(), large_objects as usize);
    Ok(Schema { pre_data, post_data, tables, large_objects, counts, warnings })
}

/// Foreign keys from a table whose rows the backup holds to one whose rows it leaves out
/// (`exclude_tables`, `include_tables`) would fail the restore when added: they are written
/// `NOT VALID` (still enforced for new rows), each with a warning. PostgreSQL before 18 has no
/// `NOT VALID` foreign key on a partitioned table: such a key fails the backup up front.
fn keys_to_rows_left_out(
    database: &str,
    nodes: &mut [Node],
    tables: &[DataTable],
    has_data: &(dyn Fn(&DataTable) -> bool + Sync),
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if !tables.iter().any(has_data) {
        return Ok(warnings); // schema only: no rows to check
    }
    let all: HashMap<u32, &DataTable> = tables.iter().map(|t| (t.oid, t)).collect();
    for node in nodes.iter_mut() {
        let Some((table, referenced, partitioned)) = node.references else { continue };
        let Some(target) = all.get(&referenced) else { continue };
        // Only a table whose rows are restored can fail the check (a partitioned table's rows
        // are its partitions': taken as restored).
        if has_data(target) || (!partitioned && all.get(&table).is_none_or(|t| !has_data(t))) {
            continue;
        }
        if partitioned {
            return Err(Error::Unsupported {
                database: database.to_owned(),
                reason: format!(
                    "{} references {}, whose rows are left out: the restore could not add it (a partitioned \
                     table's foreign key cannot be NOT VALID); keep {}'s rows or leave out this table's too",
                    node.label, target.qualified, target.qualified
                ),
            });
        }
        node.sql = format!("{} NOT VALID;", node.sql.trim_end().trim_end_matches(';'));
        warnings.push(format!(
            "{} references {}, whose rows are left out: written NOT VALID so that the restore succeeds; \
             run ALTER TABLE … VALIDATE CONSTRAINT once its rows are back",
            node.label, target.qualified
        ));
    }
    Ok(warnings)
}

/// A type's definition comes after its shell, and whatever needs the type, but the functions
/// the definition itself needs, comes after the definition (a table cannot use a shell).
fn complete_shells(
    completions: &HashMap<ObjKey, usize>,
    aliases: &HashMap<ObjKey, usize>,
    deps: &mut [Vec<usize>],
) {
    for (key, &full) in completions {
        let Some(&shell) = aliases.get(key) else { continue };
        let own: HashSet<usize> = deps[full].iter().copied().collect();
        for (i, d) in deps.iter_mut().enumerate() {
            if i != full && !own.contains(&i) && d.contains(&shell) {
                d.push(full);
            }
        }
        deps[full].push(shell);
    }
}

/// A materialized view is refreshed after every materialized view it reads, directly or
/// through views: refreshing it first fails (`has not been populated`).
fn refresh_after_sources(nodes: &[Node], aliases: &HashMap<ObjKey, usize>, deps: &mut [Vec<usize>]) {
    let refresh_of: HashMap<usize, usize> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((*aliases.get(&ObjKey(PG_CLASS, n.refreshes?))?, i)))
        .collect();
    for (&matview, &refresh) in &refresh_of {
        let mut seen = HashSet::from([matview]);
        let mut stack = vec![matview];
        let mut sources: Vec<usize> = Vec::new();
        while let Some(node) = stack.pop() {
            for &d in &deps[node] {
                if seen.insert(d) {
                    sources.extend(refresh_of.get(&d));
                    stack.push(d);
                }
            }
        }
        deps[refresh].extend(sources);
    }
}

/// What the sequences query learned, by OID.
#[derive(Debug, Clone)]
struct Sequence {
    oid: u32,
    /// Created by an identity column (part of its table's statement).
    identity: Option<String>,
    /// `OWNED BY` a column (the table's owner change carries it along).
    owned: bool,
}

/// One column as the columns query reads it.
#[derive(Debug, Clone)]
struct Column {
    attnum: i16,
    name: String,
    type_name: String,
    not_null: bool,
    default: Option<String>,
    identity: String,
    generated: String,
    local: bool,
    collation: Option<String>,
    stattarget: i32,
    storage: Option<String>,
    attrdef: Option<u32>,
    /// `pglz` or `lz4` where set on the column.
    compression: Option<String>,
    /// A foreign table's column options, ` OPTIONS (…)`.
    foreign_options: Option<String>,
    /// `n_distinct=100, …` where set (`ALTER … SET (…)`).
    options: Option<String>,
}

struct Reader<'a> {
    client: &'a Client,
    database: &'a str,
    /// Objects created by `CREATE EXTENSION`: never dumped themselves.
    members: HashSet<ObjKey>,
    /// Extensions' configuration tables and sequences (`pg_extension_config_dump`), with the
    /// condition of the rows to dump: their data is dumped, as pg_dump does.
    configuration: HashMap<u32, String>,
    nodes: Vec<Node>,
    tables: Vec<DataTable>,
    /// Large objects are dumped: comments and grants on them are written.
    large_objects: bool,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("database", &self.database).field("nodes", &self.nodes.len()).finish()
    }
}

impl<'a> Reader<'a> {
    fn new(client: &'a Client, database: &'a str) -> Self {
        Reader {
            client,
            database,
            members: HashSet::new(),
            configuration: HashMap::new(),
            nodes: Vec::new(),
            tables: Vec::new(),
            large_objects: false,
        }
    }

    /// `server_version_num`: 150004 for 15.4.
    async fn server_version(&self) -> Result<i32> {
        Ok(self.query("version", "select current_setting('server_version_num')::int").await?[0].get(0))
    }

    async fn query(&self, context: &str, sql: &str) -> Result<Vec<Row>> {
        self.client.query(sql, &[]).await.map_err(|source| Error::Database {
            target: self.database.to_owned(),
            context: format!("reading the schema ({context})"),
            source,
        })
    }

    /// Adds `node` unless it is an extension's object, or a statement on one, or what comes
    /// after the data on an extension's table (its keys, indexes, triggers): `CREATE EXTENSION`
    /// makes those. (A user's table inheriting from an extension's stays.)
    fn push(&mut self, node: Node) {
        // A type's definition completing a shell is the type's, whatever its keys (its array).
        let own = node.completes.map(|t| ObjKey(PG_TYPE, t)).or_else(|| {
            if node.kind.is_some() { node.keys.first().copied() } else { node.needs.first().copied() }
        });
        let on_member_relation = node.section == Section::PostData
            && node.needs.iter().any(|k| k.0 == PG_CLASS && self.members.contains(k));
        if !own.is_some_and(|k| self.members.contains(&k)) && !on_member_relation {
            self.nodes.push(node);
        }
    }

    /// Adds a statement on an object `CREATE EXTENSION` makes that is still the dump's to
    /// write: a configuration sequence's value, privileges changed since.
    fn push_on_extension_object(&mut self, node: Node) {
        self.nodes.push(node);
    }

    /// Objects that belong to an extension, with the extension.
    async fn extension_members(&self) -> Result<Vec<(ObjKey, ObjKey)>> {
        let rows = self
            .query(
                "extension members",
                &format!(
                    "select classid, objid, refobjid from pg_depend where deptype = 'e' and refclassid = {PG_EXTENSION}"
                ),
            )
            .await?;
        Ok(rows.iter().map(|r| (ObjKey(r.get(0), r.get(1)), ObjKey(PG_EXTENSION, r.get(2)))).collect())
    }

    /// Functions, types and casts the server made for another object (a range's constructors,
    /// multirange and its cast): they come back with that object.
    async fn implicit(&self) -> Result<Vec<ObjKey>> {
        let sql = format!(
            "select classid, objid from pg_depend where deptype = 'i' and classid in ({PG_PROC}, {PG_TYPE}, {PG_CAST})
               and objid >= {FIRST_NORMAL_OID}"
        );
        Ok(self.query("implicit objects", &sql).await?.iter().map(|r| ObjKey(r.get(0), r.get(1))).collect())
    }

    /// Every dependency between two objects, as `(dependent, referenced, deptype)`.
    async fn depend(&self) -> Result<Vec<(ObjKey, ObjKey, char)>> {
        let rows = self
            .query(
                "dependencies",
                &format!(
                    "select classid, objid, refclassid, refobjid, deptype::text from pg_depend
                     where deptype in ('n', 'a') and objid >= {FIRST_NORMAL_OID} and refobjid >= {FIRST_NORMAL_OID}"
                ),
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let t: String = r.get(4);
                (ObjKey(r.get(0), r.get(1)), ObjKey(r.get(2), r.get(3)), t.chars().next().unwrap_or('n'))
            })
            .collect())
    }
}

/// `'text'` as an SQL literal (standard_conforming_strings on).
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The relation name without its schema, from a `schema.name` both quoted as needed.
fn unqualified(qualified: &str) -> &str {
    let mut in_quotes = false;
    for (i, ch) in qualified.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => return &qualified[i + 1..],
            _ => {}
        }
    }
    qualified
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn large_tables_split_into_page_ranges() {
        let t = DataTable {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            qualified: "public.t".into(),
            columns: "id, v".into(),
            bytes: 0,
            rows_estimate: None,
            pages: 100,
            chunk: None,
            filter: None,
        };
        assert_eq!(t.copy_out(), "COPY public.t (id, v) TO STDOUT");
        let parts = t.split(3);
        let chunks: Vec<_> = parts.iter().map(|p| p.chunk).collect();
        assert_eq!(chunks, vec![Some((0, Some(33))), Some((33, Some(66))), Some((66, None))]);
        assert_eq!(
            parts[1].copy_out(),
            "COPY (SELECT id, v FROM ONLY public.t WHERE ctid >= '(33,0)'::tid AND ctid < '(66,0)'::tid) TO STDOUT"
        );
        assert_eq!(parts[2].copy_head(), "COPY public.t (id, v)");
        let configuration = DataTable { filter: Some("WHERE id > 10".into()), ..t.clone() };
        assert_eq!(
            configuration.copy_out(),
            "COPY (SELECT id, v FROM ONLY public.t WHERE id > 10) TO STDOUT"
        );
        let every_row = DataTable { filter: Some(String::new()), ..t };
        assert_eq!(every_row.copy_out(), "COPY public.t (id, v) TO STDOUT");
    }

    #[rstest]
    #[case("public.orders", "orders")]
    #[case("\"my.schema\".\"a.b\"", "\"a.b\"")]
    #[case("plain", "plain")]
    fn unqualified_names(#[case] q: &str, #[case] expected: &str) {
        assert_eq!(unqualified(q), expected);
    }
}
