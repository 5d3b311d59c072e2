//! The schema, read from the catalogs and written as SQL with the server's own `pg_get_*def`,
//! `format_type` and `pg_get_expr`, so the text is right for whatever version the server is.
//!
//! Every dumped object becomes a [`Node`]: its SQL, its section (before or after the data), the
//! catalog objects it creates (its keys) and, through `pg_depend`, what it needs. The nodes are
//! then sorted (see `order`). An object kind found in the database that this module cannot write
//! fails the backup with the object's name: nothing is skipped silently.
//!
//! All queries run with `search_path = ''` so every name the server prints is schema-qualified.

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{Client, Row};

use super::order;
use crate::error::{Error, Result};

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
}

/// The schema of one database, ready to write.
#[derive(Debug, Clone)]
pub struct Schema {
    pub pre_data: String,
    pub post_data: String,
    /// Tables with rows to dump, largest first.
    pub tables: Vec<DataTable>,
    pub large_objects: Vec<u32>,
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
    let mut reader =
        Reader { client, database, members: HashSet::new(), nodes: Vec::new(), tables: Vec::new() };
    reader.check_supported().await?;
    let members = reader.extension_members().await?;
    reader.members = members.iter().map(|(m, _)| *m).collect();
    reader.members.extend(reader.implicit().await?);
    reader.schemas().await?;
    let extensions = reader.extensions().await?;
    reader.collations().await?;
    reader.types().await?;
    reader.functions().await?;
    let sequences = reader.sequences().await?;
    reader.relations(&sequences).await?;
    reader.constraints_and_indexes().await?;
    reader.triggers_rules_policies().await?;
    let large_objects = reader.large_objects().await?;
    reader.comments().await?;
    if !options.no_owner {
        reader.owners(&sequences).await?;
    }
    if !options.no_privileges {
        reader.privileges().await?;
    }
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
    for (dependent, referenced, deptype) in depend {
        let (Some(&a), Some(&b)) = (aliases.get(&dependent), aliases.get(&referenced)) else { continue };
        // A sequence OWNED BY a column depends on its table, while the column's default
        // depends on the sequence: the ownership is its own statement, after both.
        if deptype == 'a' && dependent.0 == PG_CLASS && owned_sequences.contains(&dependent.1) {
            continue;
        }
        deps[a].push(b);
    }
    refresh_after_sources(&nodes, &aliases, &mut deps);
    let warnings = keys_to_rows_left_out(database, &mut nodes, &tables, has_data)?;
    let ranks: Vec<u32> =
        nodes.iter().map(|n| n.rank + if n.section == Section::PostData { 1000 } else { 0 }).collect();
    let sorted = order::sort(&ranks, &deps).map_err(|stuck| Error::Unsupported {
        database: database.to_owned(),
        reason: format!(
            "the schema's dependencies form a cycle the native engine cannot order: {}",
            stuck.iter().take(8).map(|&i| nodes[i].label.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })?;

    // A node needing something that comes after the data moves there too; a table cannot.
    let mut section: Vec<Section> = nodes.iter().map(|n| n.section).collect();
    for &i in &sorted {
        if let Some(latest) = deps[i].iter().map(|&d| section[d]).max()
            && latest > section[i]
        {
            if nodes[i].kind == Some("table") {
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
    counts.insert("large object".into(), large_objects.len());
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
}

struct Reader<'a> {
    client: &'a Client,
    database: &'a str,
    /// Objects created by `CREATE EXTENSION`: never dumped themselves.
    members: HashSet<ObjKey>,
    nodes: Vec<Node>,
    tables: Vec<DataTable>,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("database", &self.database).field("nodes", &self.nodes.len()).finish()
    }
}

impl Reader<'_> {
    async fn query(&self, context: &str, sql: &str) -> Result<Vec<Row>> {
        self.client.query(sql, &[]).await.map_err(|source| Error::Database {
            target: self.database.to_owned(),
            context: format!("reading the schema ({context})"),
            source,
        })
    }

    fn push(&mut self, node: Node) {
        let own = if node.kind.is_some() { node.keys.first() } else { node.needs.first() };
        if !own.is_some_and(|k| self.members.contains(k)) {
            self.nodes.push(node);
        }
    }

    /// Fails naming every object of a kind the engine cannot write.
    async fn check_supported(&self) -> Result<()> {
        let version: i32 =
            self.query("version", "select current_setting('server_version_num')::int").await?[0].get(0);
        if version < 140_000 {
            return Err(Error::Unsupported {
                database: self.database.to_owned(),
                reason: format!(
                    "the native engine needs PostgreSQL 14 or newer (server_version_num {version}); use engine pg_dump"
                ),
            });
        }
        let sql = format!(
            "select i.type || ' ' || i.identity from (
               select {PG_CLASS}::oid c, c.oid o from pg_class c where c.relkind = 'f' or (c.relkind in ('r', 'p') and c.reloftype <> 0)
               union all select {PG_TYPE}, t.oid from pg_type t where t.typtype in ('b', 'p')
                 and not exists (select 1 from pg_type a where a.typarray = t.oid)
               union all select {PG_TYPE}, r.rngtypid from pg_range r where r.rngcanonical <> 0
               union all select {PG_PROC}, a.aggfnoid from pg_aggregate a where a.aggkind <> 'n' or a.aggmtransfn <> 0
                 or a.aggserialfn <> 0 or a.aggdeserialfn <> 0 or a.aggsortop <> 0 or a.aggfinalmodify <> 'r'
               union all select 'pg_operator'::regclass::oid, oid from pg_operator
               union all select 'pg_opclass'::regclass::oid, oid from pg_opclass
               union all select 'pg_opfamily'::regclass::oid, oid from pg_opfamily
               union all select 'pg_cast'::regclass::oid, oid from pg_cast
               union all select 'pg_conversion'::regclass::oid, oid from pg_conversion
               union all select 'pg_ts_config'::regclass::oid, oid from pg_ts_config
               union all select 'pg_ts_dict'::regclass::oid, oid from pg_ts_dict
               union all select 'pg_ts_parser'::regclass::oid, oid from pg_ts_parser
               union all select 'pg_ts_template'::regclass::oid, oid from pg_ts_template
               union all select 'pg_transform'::regclass::oid, oid from pg_transform
               union all select 'pg_language'::regclass::oid, oid from pg_language
               union all select 'pg_foreign_data_wrapper'::regclass::oid, oid from pg_foreign_data_wrapper
               union all select 'pg_foreign_server'::regclass::oid, oid from pg_foreign_server
               union all select 'pg_event_trigger'::regclass::oid, oid from pg_event_trigger
               union all select 'pg_publication'::regclass::oid, oid from pg_publication
               union all select 'pg_am'::regclass::oid, oid from pg_am
             ) x, lateral pg_identify_object(x.c, x.o, 0) i
             where x.o >= {FIRST_NORMAL_OID}
               and not exists (select 1 from pg_depend d where d.classid = x.c and d.objid = x.o and d.deptype in ('e', 'i'))
             order by 1"
        );
        let found: Vec<String> =
            self.query("unsupported objects", &sql).await?.iter().map(|r| r.get(0)).collect();
        let configured: Vec<String> = self
            .query(
                "extension configuration",
                "select extname from pg_extension where cardinality(extconfig) > 0 order by 1",
            )
            .await?
            .iter()
            .map(|r| format!("configuration tables of extension {}", r.get::<_, String>(0)))
            .collect();
        let all: Vec<String> = found.into_iter().chain(configured).collect();
        if all.is_empty() {
            return Ok(());
        }
        let more = if all.len() > 10 { format!(" and {} more", all.len() - 10) } else { String::new() };
        Err(Error::Unsupported {
            database: self.database.to_owned(),
            reason: format!(
                "the native engine cannot dump {}{more}; use engine pg_dump for this database",
                all.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            ),
        })
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

    /// Functions and types the server made for another object (a range's constructors and
    /// multirange): they come back with that object.
    async fn implicit(&self) -> Result<Vec<ObjKey>> {
        let sql = format!(
            "select classid, objid from pg_depend where deptype = 'i' and classid in ({PG_PROC}, {PG_TYPE})
               and objid >= {FIRST_NORMAL_OID}"
        );
        Ok(self.query("implicit objects", &sql).await?.iter().map(|r| ObjKey(r.get(0), r.get(1))).collect())
    }

    async fn schemas(&mut self) -> Result<()> {
        let sql = format!(
            "select n.oid, quote_ident(n.nspname) from pg_namespace n where {USER_SCHEMA} and n.oid >= {FIRST_NORMAL_OID}
             order by n.nspname"
        );
        for r in self.query("schemas", &sql).await? {
            let (oid, name): (u32, String) = (r.get(0), r.get(1));
            if name == "public" {
                // Dropped and created again (a common reset): the target has one already, as
                // every new database does; pg_dump leaves it out by name too.
                continue;
            }
            self.push(
                Node::new(
                    Section::PreData,
                    10,
                    "schema",
                    format!("schema {name}"),
                    format!("CREATE SCHEMA {name};"),
                )
                .keys([ObjKey(PG_NAMESPACE, oid)]),
            );
        }
        // `public` comes with every new database; its comment, owner and grants still follow.
        Ok(())
    }

    /// Returns the extension nodes by their key, for the members' aliases.
    async fn extensions(&mut self) -> Result<HashMap<ObjKey, usize>> {
        let sql = format!(
            "select e.oid, quote_ident(e.extname), quote_ident(n.nspname), n.oid from pg_extension e
             join pg_namespace n on n.oid = e.extnamespace where e.oid >= {FIRST_NORMAL_OID} order by e.extname"
        );
        let mut out = HashMap::new();
        for r in self.query("extensions", &sql).await? {
            let (oid, name, schema, nsp): (u32, String, String, u32) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let key = ObjKey(PG_EXTENSION, oid);
            out.insert(key, self.nodes.len());
            self.push(
                Node::new(
                    Section::PreData,
                    20,
                    "extension",
                    format!("extension {name}"),
                    format!("CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {schema};"),
                )
                .keys([key])
                .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(out)
    }

    /// Collations made with `CREATE COLLATION` (Django's case-insensitive ICU collations, say).
    /// The catalog's columns differ by version (PostgreSQL 15 added `colliculocale`, 16
    /// `collicurules`, 17 renamed the locale `colllocale`), so the row is read as JSON and the
    /// statement built from the columns this server has.
    async fn collations(&mut self) -> Result<()> {
        let sql = format!(
            "select c.oid, format('%I.%I', n.nspname, c.collname), c.collnamespace, to_jsonb(c)::text
             from pg_collation c join pg_namespace n on n.oid = c.collnamespace
             where c.oid >= {FIRST_NORMAL_OID} order by 2"
        );
        for r in self.query("collations", &sql).await? {
            let (oid, name, nsp, row): (u32, String, u32, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let row: serde_json::Value = serde_json::from_str(&row).map_err(|e| Error::Dump {
                database: self.database.to_owned(),
                reason: format!("collation {name}: unreadable catalog row: {e}"),
            })?;
            let options = collation_options(&row).map_err(|reason| Error::Dump {
                database: self.database.to_owned(),
                reason: format!(
                    "the native engine cannot dump collation {name}: {reason}; use engine pg_dump"
                ),
            })?;
            self.push(
                Node::new(
                    Section::PreData,
                    25,
                    "collation",
                    format!("collation {name}"),
                    format!("CREATE COLLATION {name} ({options});"),
                )
                .keys([ObjKey(PG_COLLATION, oid)])
                .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }

    /// Enums, ranges, domains and composite types.
    async fn types(&mut self) -> Result<()> {
        let sql = format!(
            "select t.oid, t.typtype::text, format('%I.%I', n.nspname, t.typname), t.typnamespace, t.typarray, t.typrelid,
               (select string_agg(quote_literal(e.enumlabel), E',\\n    ' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
               format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
               (select format(' COLLATE %I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                 where co.oid = t.typcollation and t.typcollation <> coalesce((select b.typcollation from pg_type b where b.oid = t.typbasetype), 0)),
               (select format('subtype = %s%s%s%s, multirange_type_name = %I.%I', format_type(r.rngsubtype, null),
                   (select format(', subtype_opclass = %I.%I', ocn.nspname, oc.opcname) from pg_opclass oc join pg_namespace ocn on ocn.oid = oc.opcnamespace
                     where oc.oid = r.rngsubopc and not oc.opcdefault),
                   (select format(', collation = %I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                     where co.oid = r.rngcollation and r.rngcollation <> (select s.typcollation from pg_type s where s.oid = r.rngsubtype)),
                   case when r.rngsubdiff <> 0 then ', subtype_diff = ' || r.rngsubdiff::regproc::text end,
                   mn.nspname, m.typname)
                 from pg_range r join pg_type m on m.oid = r.rngmultitypid join pg_namespace mn on mn.oid = m.typnamespace
                 where r.rngtypid = t.oid),
               (select array[r.rngmultitypid, m.typarray] from pg_range r join pg_type m on m.oid = r.rngmultitypid where r.rngtypid = t.oid)
             from pg_type t join pg_namespace n on n.oid = t.typnamespace left join pg_class c on c.oid = t.typrelid
             where {USER_SCHEMA} and t.typtype in ('e', 'r', 'd', 'c') and (t.typrelid = 0 or c.relkind = 'c')
             order by 3"
        );
        let rows = self.query("types", &sql).await?;
        let domain_checks = self.domain_constraints().await?;
        let composite_columns = self.columns("composite types", "c.relkind = 'c'").await?;
        for r in rows {
            let (oid, kind, name, nsp, array, relid): (u32, String, String, u32, u32, u32) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let mut keys = vec![ObjKey(PG_TYPE, oid), ObjKey(PG_TYPE, array)];
            let (node_kind, label, sql) = match kind.as_str() {
                "e" => {
                    let labels: Option<String> = r.get(6);
                    (
                        "type",
                        format!("type {name}"),
                        format!("CREATE TYPE {name} AS ENUM (\n    {}\n);", labels.unwrap_or_default()),
                    )
                }
                "r" => {
                    let def: String = r.get(11);
                    let multi: Vec<u32> = r.get(12);
                    keys.extend(multi.into_iter().map(|m| ObjKey(PG_TYPE, m)));
                    ("type", format!("type {name}"), format!("CREATE TYPE {name} AS RANGE (\n    {def}\n);"))
                }
                "d" => {
                    let (base, not_null, default, collate): (String, bool, Option<String>, Option<String>) =
                        (r.get(7), r.get(8), r.get(9), r.get(10));
                    let mut sql = format!("CREATE DOMAIN {name} AS {base}{}", collate.unwrap_or_default());
                    if let Some(d) = default {
                        sql.push_str(&format!(" DEFAULT {d}"));
                    }
                    if not_null {
                        sql.push_str(" NOT NULL");
                    }
                    for (con, def, validated) in domain_checks.get(&oid).into_iter().flatten() {
                        keys.push(ObjKey(PG_CONSTRAINT, *con));
                        if *validated {
                            sql.push_str(&format!("\n    {def}"));
                        }
                    }
                    sql.push(';');
                    for (_, def, validated) in domain_checks.get(&oid).into_iter().flatten() {
                        if !validated {
                            sql.push_str(&format!("\nALTER DOMAIN {name} ADD {def};"));
                        }
                    }
                    ("domain", format!("domain {name}"), sql)
                }
                _ => {
                    keys.push(ObjKey(PG_CLASS, relid));
                    let cols = composite_columns.get(&relid).map(Vec::as_slice).unwrap_or_default();
                    let body: Vec<String> = cols
                        .iter()
                        .map(|c| {
                            format!(
                                "    {} {}{}",
                                c.name,
                                c.type_name,
                                c.collation.as_deref().map(|co| format!(" COLLATE {co}")).unwrap_or_default()
                            )
                        })
                        .collect();
                    (
                        "type",
                        format!("type {name}"),
                        format!("CREATE TYPE {name} AS (\n{}\n);", body.join(",\n")),
                    )
                }
            };
            let rank = if kind == "d" {
                32
            } else if kind == "c" {
                34
            } else {
                30
            };
            self.push(
                Node::new(Section::PreData, rank, node_kind, label, sql)
                    .keys(keys)
                    .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }

    /// Domain CHECK constraints by domain: `(constraint oid, "CONSTRAINT name CHECK …", validated)`.
    async fn domain_constraints(&self) -> Result<HashMap<u32, Vec<(u32, String, bool)>>> {
        let sql = "select co.contypid, co.oid, format('CONSTRAINT %I %s', co.conname, pg_get_constraintdef(co.oid)), co.convalidated
                   from pg_constraint co where co.contypid <> 0 and co.contype = 'c' order by co.contypid, co.conname";
        let mut out: HashMap<u32, Vec<(u32, String, bool)>> = HashMap::new();
        for r in self.query("domain constraints", sql).await? {
            out.entry(r.get(0)).or_default().push((r.get(1), r.get(2), r.get(3)));
        }
        Ok(out)
    }

    /// Columns of the relations matching `filter` (on `pg_class c`), by relation, in order.
    async fn columns(&self, context: &str, filter: &str) -> Result<HashMap<u32, Vec<Column>>> {
        let sql = format!(
            "select a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, a.attislocal,
               (select format('%I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                 where co.oid = a.attcollation and a.attcollation <> t.typcollation),
               coalesce(a.attstattarget::int, -1),
               case when a.attstorage <> t.typstorage then case a.attstorage when 'p' then 'PLAIN' when 'e' then 'EXTERNAL'
                 when 'm' then 'MAIN' else 'EXTENDED' end end,
               d.oid, case a.attcompression when 'p' then 'pglz' when 'l' then 'lz4' end
             from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
             join pg_type t on t.oid = a.atttypid left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
             where a.attnum > 0 and not a.attisdropped and {USER_SCHEMA} and {filter}
             order by a.attrelid, a.attnum"
        );
        let mut out: HashMap<u32, Vec<Column>> = HashMap::new();
        for r in self.query(context, &sql).await? {
            out.entry(r.get(0)).or_default().push(Column {
                attnum: r.get(1),
                name: r.get(2),
                type_name: r.get(3),
                not_null: r.get(4),
                default: r.get(5),
                identity: r.get(6),
                generated: r.get(7),
                local: r.get(8),
                collation: r.get(9),
                stattarget: r.get(10),
                storage: r.get(11),
                attrdef: r.get(12),
                compression: r.get(13),
            });
        }
        Ok(out)
    }

    /// Functions, procedures and (plain) aggregates.
    async fn functions(&mut self) -> Result<()> {
        let sql = format!(
            "select p.oid, p.prokind::text, p.pronamespace, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               case when p.prokind <> 'a' then pg_get_functiondef(p.oid) end,
               (select format(E'CREATE AGGREGATE %I.%I(%s) (\\n    SFUNC = %s,\\n    STYPE = %s%s%s%s%s%s%s\\n);',
                   n.nspname, p.proname, coalesce(nullif(pg_get_function_arguments(p.oid), ''), '*'), a.aggtransfn::regproc, format_type(a.aggtranstype, null),
                   case when a.aggtransspace <> 0 then format(E',\\n    SSPACE = %s', a.aggtransspace) end,
                   case when a.aggfinalfn <> 0 then format(E',\\n    FINALFUNC = %s', a.aggfinalfn::regproc) end,
                   case when a.aggfinalextra then E',\\n    FINALFUNC_EXTRA' end,
                   case when a.aggcombinefn <> 0 then format(E',\\n    COMBINEFUNC = %s', a.aggcombinefn::regproc) end,
                   case when a.agginitval is not null then format(E',\\n    INITCOND = %L', a.agginitval) end,
                   case p.proparallel when 's' then E',\\n    PARALLEL = safe' when 'r' then E',\\n    PARALLEL = restricted' end)
                 from pg_aggregate a where a.aggfnoid = p.oid)
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where {USER_SCHEMA} order by 4"
        );
        for r in self.query("functions", &sql).await? {
            let (oid, kind, nsp, name): (u32, String, u32, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let (node_kind, rank, def): (&'static str, u32, Option<String>) = match kind.as_str() {
                "a" => ("aggregate", 42, r.get(5)),
                "p" => ("procedure", 40, r.get(4)),
                _ => ("function", 40, r.get(4)),
            };
            let def = def.unwrap_or_default();
            self.push(
                Node::new(
                    Section::PreData,
                    rank,
                    node_kind,
                    format!("{node_kind} {name}"),
                    format!("{};", def.trim_end()),
                )
                .keys([ObjKey(PG_PROC, oid)])
                .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }

    /// All sequences; standalone ones become nodes, identity ones are part of their table.
    async fn sequences(&mut self) -> Result<HashMap<u32, Sequence>> {
        let sql = format!(
            "select c.oid, format('%I.%I', n.nspname, c.relname), c.relnamespace, c.relpersistence = 'u', format_type(s.seqtypid, null),
               s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               d.deptype::text, d.refobjid, (select quote_ident(a.attname) from pg_attribute a where a.attrelid = d.refobjid and a.attnum = d.refobjsubid),
               d.refobjid::regclass::text, pg_sequence_last_value(c.oid)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_sequence s on s.seqrelid = c.oid
             left join pg_depend d on d.classid = {PG_CLASS} and d.objid = c.oid and d.refclassid = {PG_CLASS}
               and d.refobjsubid > 0 and d.deptype in ('a', 'i')
             where c.relkind = 'S' and {USER_SCHEMA} order by 2"
        );
        let mut out = HashMap::new();
        for r in self.query("sequences", &sql).await? {
            let (oid, name, nsp, unlogged): (u32, String, u32, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let (start, inc, min, max, cache, cycle): (i64, i64, i64, i64, i64, bool) =
                (r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10));
            let options = format!(
                "START WITH {start} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} CACHE {cache}{}",
                if cycle { " CYCLE" } else { "" }
            );
            let deptype: Option<String> = r.get(11);
            let table: Option<u32> = r.get(12);
            let last: Option<i64> = r.get(15);
            let setval = match last {
                Some(v) => format!("SELECT pg_catalog.setval({}, {v}, true);", sql_literal(&name)),
                None => format!("SELECT pg_catalog.setval({}, {start}, false);", sql_literal(&name)),
            };
            let key = ObjKey(PG_CLASS, oid);
            let identity =
                (deptype.as_deref() == Some("i")).then(|| format!("SEQUENCE NAME {name} {options}"));
            if identity.is_none() {
                let ty: String = r.get(4);
                self.push(
                    Node::new(
                        Section::PreData,
                        50,
                        "sequence",
                        format!("sequence {name}"),
                        format!(
                            "CREATE {}SEQUENCE {name} AS {ty} {options};",
                            if unlogged { "UNLOGGED " } else { "" }
                        ),
                    )
                    .keys([key])
                    .needs([ObjKey(PG_NAMESPACE, nsp)]),
                );
            }
            let owned = deptype.as_deref() == Some("a");
            if owned {
                let (column, table_name): (String, String) = (r.get(13), r.get(14));
                self.push(
                    Node::extra(
                        Section::PreData,
                        65,
                        format!("ownership of sequence {name}"),
                        format!("ALTER SEQUENCE {name} OWNED BY {table_name}.{column};"),
                        key,
                    )
                    .needs(table.map(|t| ObjKey(PG_CLASS, t))),
                );
            }
            self.push(Node::extra(Section::PostData, 150, format!("value of sequence {name}"), setval, key));
            out.insert(oid, Sequence { oid, identity, owned });
        }
        Ok(out)
    }

    /// Tables, partitions, views and materialized views.
    async fn relations(&mut self, sequences: &HashMap<u32, Sequence>) -> Result<()> {
        let sql = format!(
            "select c.oid, c.relkind::text, format('%I.%I', n.nspname, c.relname), c.relnamespace, c.relpersistence = 'u',
               (select string_agg(split_part(o, '=', 1) || '=' || quote_literal(substr(o, strpos(o, '=') + 1)), ', ' order by k, n)
                  from (select 1 k, o, n from unnest(c.reloptions) with ordinality u(o, n)
                        union all select 2, 'toast.' || o, n from pg_class tc, unnest(tc.reloptions) with ordinality u(o, n)
                          where tc.oid = c.reltoastrelid) x),
               c.reltype, (select t.typarray from pg_type t where t.oid = c.reltype),
               case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,
               c.relispartition, case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end,
               coalesce((select array_agg(i.inhparent order by i.inhseqno) from pg_inherits i where i.inhrelid = c.oid), '{{}}'),
               case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end,
               c.relispopulated, c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text,
               pg_total_relation_size(c.oid), case when c.reltuples < 0 then null else c.reltuples::bigint end,
               (select r.oid from pg_rewrite r where r.ev_class = c.oid and r.rulename = '_RETURN'),
               n.nspname, c.relname, pg_relation_size(c.oid) / current_setting('block_size')::bigint
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p', 'v', 'm') and {USER_SCHEMA} order by 3"
        );
        let rows = self.query("tables and views", &sql).await?;
        let columns = self.columns("columns", "c.relkind in ('r', 'p', 'v', 'm')").await?;
        let checks = self.table_checks().await?;
        let names: HashMap<u32, String> = rows.iter().map(|r| (r.get(0), r.get(2))).collect();
        let seq_by_table = self.identity_sequences(sequences).await?;
        for r in &rows {
            let (oid, kind, name, nsp, unlogged): (u32, String, String, u32, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            let options: Option<String> = r.get(5);
            let with = options.map(|o| format!(" WITH ({o})")).unwrap_or_default();
            let (reltype, array): (u32, u32) = (r.get(6), r.get(7));
            let parents: Vec<u32> = r.get(11);
            let mut keys = vec![ObjKey(PG_CLASS, oid), ObjKey(PG_TYPE, reltype), ObjKey(PG_TYPE, array)];
            let cols = columns.get(&oid).map(Vec::as_slice).unwrap_or_default();
            let needs =
                [ObjKey(PG_NAMESPACE, nsp)].into_iter().chain(parents.iter().map(|p| ObjKey(PG_CLASS, *p)));
            match kind.as_str() {
                "v" | "m" => {
                    let def: String = r.get(12);
                    let rule: Option<u32> = r.get(19);
                    keys.extend(rule.map(|o| ObjKey(PG_REWRITE, o)));
                    let def = def.trim_end().trim_end_matches(';');
                    let (sql, node_kind, rank) = if kind == "v" {
                        let mut sql = format!("CREATE VIEW {name}{with} AS\n{def};");
                        for c in cols.iter().filter(|c| c.default.is_some()) {
                            sql.push_str(&format!(
                                "\nALTER VIEW {name} ALTER COLUMN {} SET DEFAULT {};",
                                c.name,
                                c.default.as_deref().unwrap_or_default()
                            ));
                        }
                        (sql, "view", 120)
                    } else {
                        let mut sql =
                            format!("CREATE MATERIALIZED VIEW {name}{with} AS\n{def}\n  WITH NO DATA;");
                        for setting in cols.iter().flat_map(|c| column_settings(&name, c)) {
                            sql.push('\n');
                            sql.push_str(&setting);
                        }
                        (sql, "materialized view", 121)
                    };
                    self.push(
                        Node::new(Section::PostData, rank, node_kind, format!("{node_kind} {name}"), sql)
                            .keys(keys)
                            .needs(needs),
                    );
                    if kind == "m" && r.get::<_, bool>(13) {
                        self.push(Node {
                            refreshes: Some(oid),
                            ..Node::extra(
                                Section::PostData,
                                160,
                                format!("data of materialized view {name}"),
                                format!("REFRESH MATERIALIZED VIEW {name};"),
                                ObjKey(PG_CLASS, oid),
                            )
                        });
                    }
                }
                _ => {
                    let partition: Option<String> = r.get(10);
                    let partition_key: Option<String> = r.get(8);
                    let table_checks = checks.get(&oid).map(Vec::as_slice).unwrap_or_default();
                    let mut body: Vec<String> = Vec::new();
                    let mut after: Vec<String> = Vec::new();
                    let parent_cols: Vec<&Column> = parents
                        .iter()
                        .flat_map(|p| columns.get(p).map(Vec::as_slice).unwrap_or_default())
                        .collect();
                    for c in cols {
                        keys.extend(c.attrdef.map(|d| ObjKey(PG_ATTRDEF, d)));
                        // A partition is written whole, as a table of its own, then attached
                        // (as pg_dump does): its columns keep their order and their defaults.
                        if c.local || partition.is_some() {
                            // A column both local and inherited takes its generation expression
                            // from the parent; repeating it is refused.
                            let inherits_generation = partition.is_none()
                                && !c.generated.is_empty()
                                && parent_cols.iter().any(|p| p.name == c.name && !p.generated.is_empty());
                            let plain;
                            let c = if inherits_generation {
                                plain = Column { generated: String::new(), default: None, ..c.clone() };
                                &plain
                            } else {
                                c
                            };
                            body.push(format!(
                                "    {}",
                                column_def(c, seq_by_table.get(&(oid, c.attnum)).copied())
                            ));
                        } else {
                            // Inherited: only what differs from the parent.
                            let parent = parent_cols.iter().find(|p| p.name == c.name);
                            if c.default != parent.and_then(|p| p.default.clone())
                                && c.generated.is_empty()
                                && let Some(d) = &c.default
                            {
                                after.push(format!(
                                    "ALTER TABLE ONLY {name} ALTER COLUMN {} SET DEFAULT {d};",
                                    c.name
                                ));
                            }
                            if c.not_null && !parent.is_some_and(|p| p.not_null) {
                                after.push(format!(
                                    "ALTER TABLE ONLY {name} ALTER COLUMN {} SET NOT NULL;",
                                    c.name
                                ));
                            }
                        }
                        after.extend(column_settings(&name, c));
                    }
                    for (con, def) in table_checks {
                        keys.push(ObjKey(PG_CONSTRAINT, *con));
                        body.push(format!("    {def}"));
                    }
                    let persistence = if unlogged { "UNLOGGED " } else { "" };
                    let mut sql = match &partition {
                        Some(_) => format!("CREATE {persistence}TABLE {name} (\n{}\n)", body.join(",\n")),
                        None => {
                            let inherits = if parents.is_empty() {
                                String::new()
                            } else {
                                let p: Vec<&str> =
                                    parents.iter().filter_map(|p| names.get(p)).map(String::as_str).collect();
                                format!("\nINHERITS ({})", p.join(", "))
                            };
                            format!("CREATE {persistence}TABLE {name} (\n{}\n){inherits}", body.join(",\n"))
                        }
                    };
                    if let Some(k) = partition_key {
                        sql.push_str(&format!("\nPARTITION BY {k}"));
                    }
                    sql.push_str(&with);
                    sql.push(';');
                    if let Some(bound) = &partition {
                        let parent = parents.first().and_then(|p| names.get(p)).cloned().unwrap_or_default();
                        sql.push_str(&format!(
                            "\nALTER TABLE ONLY {parent} ATTACH PARTITION {name} {bound};"
                        ));
                    }
                    for a in after {
                        sql.push('\n');
                        sql.push_str(&a);
                    }
                    for ((table, _), seq) in &seq_by_table {
                        if *table == oid {
                            keys.push(ObjKey(PG_CLASS, seq.oid));
                        }
                    }
                    self.push(
                        Node::new(Section::PreData, 60, "table", format!("table {name}"), sql)
                            .keys(keys)
                            .needs(needs),
                    );

                    let (rls, force, replident): (bool, bool, String) = (r.get(14), r.get(15), r.get(16));
                    let on = ObjKey(PG_CLASS, oid);
                    if rls {
                        self.push(Node::extra(
                            Section::PostData,
                            143,
                            format!("row security of {name}"),
                            format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;"),
                            on,
                        ));
                    }
                    if force {
                        self.push(Node::extra(
                            Section::PostData,
                            143,
                            format!("row security of {name}"),
                            format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY;"),
                            on,
                        ));
                    }
                    if replident == "f" || replident == "n" {
                        let what = if replident == "f" { "FULL" } else { "NOTHING" };
                        self.push(Node::extra(
                            Section::PostData,
                            145,
                            format!("replica identity of {name}"),
                            format!("ALTER TABLE ONLY {name} REPLICA IDENTITY {what};"),
                            on,
                        ));
                    }
                    if kind == "r" && !self.members.contains(&ObjKey(PG_CLASS, oid)) {
                        let data_cols: Vec<&str> =
                            cols.iter().filter(|c| c.generated.is_empty()).map(|c| c.name.as_str()).collect();
                        self.tables.push(DataTable {
                            oid,
                            schema: r.get(20),
                            name: r.get(21),
                            qualified: name.clone(),
                            columns: data_cols.join(", "),
                            bytes: r.get(17),
                            rows_estimate: r.get(18),
                            pages: r.get(22),
                            chunk: None,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Identity sequences by `(table, column)`.
    async fn identity_sequences<'s>(
        &self,
        sequences: &'s HashMap<u32, Sequence>,
    ) -> Result<HashMap<(u32, i16), &'s Sequence>> {
        let sql = format!(
            "select d.objid, d.refobjid, d.refobjsubid::smallint from pg_depend d
             where d.classid = {PG_CLASS} and d.refclassid = {PG_CLASS} and d.deptype = 'i' and d.refobjsubid > 0"
        );
        let mut out = HashMap::new();
        for r in self.query("identity columns", &sql).await? {
            if let Some(seq) = sequences.get(&r.get::<_, u32>(0)).filter(|s| s.identity.is_some()) {
                out.insert((r.get(1), r.get(2)), seq);
            }
        }
        Ok(out)
    }

    /// Validated, local CHECK constraints, written inside CREATE TABLE: `(oid, definition)`.
    async fn table_checks(&self) -> Result<HashMap<u32, Vec<(u32, String)>>> {
        let sql =
            "select co.conrelid, co.oid, format('CONSTRAINT %I %s', co.conname, pg_get_constraintdef(co.oid))
                   from pg_constraint co join pg_class c on c.oid = co.conrelid
                   where co.contype = 'c' and co.convalidated and (co.conislocal or c.relispartition)
                   order by co.conrelid, co.conname";
        let mut out: HashMap<u32, Vec<(u32, String)>> = HashMap::new();
        for r in self.query("check constraints", sql).await? {
            out.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
        }
        Ok(out)
    }

    /// Primary keys, unique, exclusion and foreign keys, NOT VALID checks; indexes, the
    /// attachment of partitions' indexes to their parents', CLUSTER ON and replica identity.
    async fn constraints_and_indexes(&mut self) -> Result<()> {
        let sql = format!(
            "select co.oid, co.contype::text, quote_ident(co.conname), co.conrelid, co.conrelid::regclass::text,
               pg_get_constraintdef(co.oid), co.conindid, c.relkind::text, co.conparentid, co.confrelid, co.convalidated
             from pg_constraint co join pg_class c on c.oid = co.conrelid join pg_namespace n on n.oid = c.relnamespace
             where {USER_SCHEMA} and (co.contype in ('p', 'u', 'x')
               or (co.conislocal and (co.contype = 'f' or (co.contype = 'c' and not co.convalidated))))
             order by 5, 3"
        );
        let mut constraint_index: HashSet<u32> = HashSet::new();
        for r in self.query("constraints", &sql).await? {
            let (oid, kind, name, rel, table, def, index, relkind, parent): (
                u32,
                String,
                String,
                u32,
                String,
                String,
                u32,
                String,
                u32,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8));
            // Foreign keys of partitions come with their parent's.
            if kind == "f" && parent != 0 {
                continue;
            }
            // A NOT VALID check goes to the children too, as when it was added (they hold an
            // inherited copy that is not written): `ONLY` is refused while children exist.
            let only = if (relkind == "p" && kind == "f") || kind == "c" { "" } else { "ONLY " };
            let (node_kind, rank) = match kind.as_str() {
                "f" => ("foreign key", 130),
                "c" => ("check constraint", 100),
                _ => ("constraint", 110),
            };
            let mut keys = vec![ObjKey(PG_CONSTRAINT, oid)];
            if kind != "f" && index != 0 {
                keys.push(ObjKey(PG_CLASS, index));
                constraint_index.insert(index);
            }
            let (referenced, validated): (u32, bool) = (r.get(9), r.get(10));
            self.push(Node {
                references: (kind == "f" && validated).then_some((rel, referenced, relkind == "p")),
                ..Node::new(
                    Section::PostData,
                    rank,
                    node_kind,
                    format!("constraint {name} on {table}"),
                    format!("ALTER TABLE {only}{table}\n    ADD CONSTRAINT {name} {def};"),
                )
                .keys(keys)
                .needs([ObjKey(PG_CLASS, rel)])
            });
        }
        let sql = format!(
            "select i.indexrelid, i.indrelid, pg_get_indexdef(i.indexrelid), format('%I.%I', n.nspname, ic.relname),
               i.indisclustered, i.indisreplident, t.oid::regclass::text,
               (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
                  join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = i.indexrelid),
               (select h.inhparent from pg_inherits h where h.inhrelid = i.indexrelid)
             from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_namespace n on n.oid = ic.relnamespace
             join pg_class t on t.oid = i.indrelid
             where {USER_SCHEMA} and t.relkind in ('r', 'p', 'm') order by 4"
        );
        for r in self.query("indexes", &sql).await? {
            let (oid, rel, def, name, clustered, replident, table): (
                u32,
                u32,
                String,
                String,
                bool,
                bool,
                String,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
            let key = ObjKey(PG_CLASS, oid);
            if !constraint_index.contains(&oid) {
                self.push(
                    Node::new(Section::PostData, 115, "index", format!("index {name}"), format!("{def};"))
                        .keys([key])
                        .needs([ObjKey(PG_CLASS, rel)]),
                );
            }
            let (parent_name, parent): (Option<String>, Option<u32>) = (r.get(7), r.get(8));
            if let (Some(parent_name), Some(parent)) = (parent_name, parent) {
                self.push(
                    Node::extra(
                        Section::PostData,
                        116,
                        format!("attachment of index {name}"),
                        format!("ALTER INDEX {parent_name} ATTACH PARTITION {name};"),
                        key,
                    )
                    .needs([ObjKey(PG_CLASS, parent)]),
                );
            }
            if clustered {
                self.push(Node::extra(
                    Section::PostData,
                    145,
                    format!("clustering of {table}"),
                    format!("ALTER TABLE {table} CLUSTER ON {};", unqualified(&name)),
                    key,
                ));
            }
            if replident {
                self.push(Node::extra(
                    Section::PostData,
                    145,
                    format!("replica identity of {table}"),
                    format!("ALTER TABLE ONLY {table} REPLICA IDENTITY USING INDEX {};", unqualified(&name)),
                    key,
                ));
            }
        }
        Ok(())
    }

    async fn triggers_rules_policies(&mut self) -> Result<()> {
        let sql = format!(
            "select tg.oid, tg.tgrelid, pg_get_triggerdef(tg.oid), quote_ident(tg.tgname), tg.tgenabled::text, c.oid::regclass::text
             from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
             where {USER_SCHEMA} and not tg.tgisinternal and tg.tgparentid = 0 order by 6, 4"
        );
        for r in self.query("triggers", &sql).await? {
            let (oid, rel, def, name, enabled, table): (u32, u32, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let mut sql = format!("{def};");
            match enabled.as_str() {
                "D" => sql.push_str(&format!("\nALTER TABLE {table} DISABLE TRIGGER {name};")),
                "R" => sql.push_str(&format!("\nALTER TABLE {table} ENABLE REPLICA TRIGGER {name};")),
                "A" => sql.push_str(&format!("\nALTER TABLE {table} ENABLE ALWAYS TRIGGER {name};")),
                _ => {}
            }
            self.push(
                Node::new(Section::PostData, 140, "trigger", format!("trigger {name} on {table}"), sql)
                    .keys([ObjKey(PG_TRIGGER, oid)])
                    .needs([ObjKey(PG_CLASS, rel)]),
            );
        }
        let sql = format!(
            "select r.oid, r.ev_class, pg_get_ruledef(r.oid), format('%I on %s', r.rulename, c.oid::regclass)
             from pg_rewrite r join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
             where {USER_SCHEMA} and r.rulename <> '_RETURN' order by 4"
        );
        for r in self.query("rules", &sql).await? {
            let (oid, rel, def, label): (u32, u32, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            self.push(
                Node::new(Section::PostData, 141, "rule", format!("rule {label}"), def)
                    .keys([ObjKey(PG_REWRITE, oid)])
                    .needs([ObjKey(PG_CLASS, rel)]),
            );
        }
        let sql = format!(
            "select p.oid, p.polrelid, format('CREATE POLICY %I ON %s%s FOR %s TO %s%s%s;', p.polname, c.oid::regclass,
                 case when not p.polpermissive then ' AS RESTRICTIVE' end,
                 case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' when 'd' then 'DELETE' else 'ALL' end,
                 (select string_agg(case when g = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(g)) end, ', ') from unnest(p.polroles) g),
                 E'\\n  USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                 E'\\n  WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
               format('%I on %s', p.polname, c.oid::regclass)
             from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
             where {USER_SCHEMA} order by 4"
        );
        for r in self.query("policies", &sql).await? {
            let (oid, rel, def, label): (u32, u32, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            self.push(
                Node::new(Section::PostData, 142, "policy", format!("policy {label}"), def)
                    .keys([ObjKey(PG_POLICY, oid)])
                    .needs([ObjKey(PG_CLASS, rel)]),
            );
        }
        let sql = format!(
            "select s.oid, s.stxrelid, pg_get_statisticsobjdef(s.oid), format('%I.%I', n.nspname, s.stxname), s.stxnamespace
             from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where {USER_SCHEMA} order by 4"
        );
        for r in self.query("statistics objects", &sql).await? {
            let (oid, rel, def, name, nsp): (u32, u32, String, String, u32) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            self.push(
                Node::new(
                    Section::PostData,
                    144,
                    "statistics",
                    format!("statistics {name}"),
                    format!("{def};"),
                )
                .keys([ObjKey(PG_STATISTIC_EXT, oid)])
                .needs([ObjKey(PG_CLASS, rel), ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }

    async fn large_objects(&mut self) -> Result<Vec<u32>> {
        let rows =
            self.query("large objects", "select oid from pg_largeobject_metadata order by oid").await?;
        let oids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
        for &oid in &oids {
            self.push(
                Node::new(
                    Section::PreData,
                    70,
                    "large object",
                    format!("large object {oid}"),
                    format!("SELECT pg_catalog.lo_create('{oid}');"),
                )
                .keys([ObjKey(PG_LARGEOBJECT, oid)]),
            );
        }
        Ok(oids)
    }

    /// `COMMENT ON …` for every commented object this dump creates (and `public`).
    async fn comments(&mut self) -> Result<()> {
        let sql = format!(
            "select d.classoid, d.objoid,
                     case when d.classoid = {PG_PROC} then upper(i.type) || ' ' || {routine}
                          when i.type = 'domain constraint' then
                            (select format('CONSTRAINT %I ON DOMAIN %s', co.conname, format_type(co.contypid, null)) from pg_constraint co where co.oid = d.objoid)
                          when i.type = 'table constraint' then 'CONSTRAINT ' || i.identity
                          when i.type = 'composite type' then 'TYPE ' || i.identity
                          when i.type = 'statistics object' then 'STATISTICS ' || i.identity
                          when i.type like '% column' then 'COLUMN ' || i.identity
                          else upper(i.type) || ' ' || i.identity end,
                     quote_literal(d.description)
                   from pg_description d, lateral pg_identify_object(d.classoid, d.objoid, d.objsubid) i
                   where d.classoid <> 'pg_database'::regclass order by 3",
            routine = routine_identity("d.objoid", true)
        );
        let rows = self.query("comments", &sql).await?;
        self.extras(rows, 190, "comment on", |target, text| format!("COMMENT ON {target} IS {text};"))
    }

    /// `ALTER … OWNER TO` for every owned object this dump creates.
    async fn owners(&mut self, sequences: &HashMap<u32, Sequence>) -> Result<()> {
        let sql = format!(
            "select x.c, x.o,
               case when i.type = 'composite type' then 'TYPE ' || i.identity
                    when i.type = 'statistics object' then 'STATISTICS ' || i.identity
                    when x.c = {PG_PROC} then upper(i.type) || ' ' || {routine}
                    else upper(i.type) || ' ' || i.identity end,
               quote_ident(pg_get_userbyid(x.owner))
             from (select {PG_CLASS}::oid c, oid o, relowner owner from pg_class where relkind in ('r', 'p', 'v', 'm', 'S')
                   union all select {PG_TYPE}, t.oid, t.typowner from pg_type t left join pg_class c on c.oid = t.typrelid
                     where t.typtype in ('e', 'r', 'd') or (t.typtype = 'c' and c.relkind = 'c')
                   union all select {PG_PROC}, oid, proowner from pg_proc
                   union all select {PG_NAMESPACE}, oid, nspowner from pg_namespace
                   union all select {PG_STATISTIC_EXT}, oid, stxowner from pg_statistic_ext
                   union all select {PG_COLLATION}, oid, collowner from pg_collation
                   union all select {PG_LARGEOBJECT}, oid, lomowner from pg_largeobject_metadata) x,
               lateral pg_identify_object(x.c, x.o, 0) i
             order by 3",
            routine = routine_identity("x.o", true)
        );
        let rows = self.query("owners", &sql).await?;
        // Sequences that belong to a column change owner with their table; `public` keeps the
        // owner a new database gives it unless it was changed.
        let rows: Vec<Row> = rows
            .into_iter()
            .filter(|r| {
                let (class, target, owner): (u32, Option<String>, String) = (r.get(0), r.get(2), r.get(3));
                let sequence = class == PG_CLASS
                    && sequences.get(&r.get(1)).is_some_and(|s| s.owned || s.identity.is_some());
                let default_public =
                    target.as_deref() == Some("SCHEMA public") && owner == "pg_database_owner";
                !sequence && !default_public
            })
            .collect();
        self.extras(rows, 170, "owner of", |target, owner| format!("ALTER {target} OWNER TO {owner};"))
    }

    /// For each row `(class, oid, target, value)` naming an object this dump creates (or the
    /// schema `public`, which every database has), a post-data statement `render(target, value)`.
    fn extras(
        &mut self,
        rows: Vec<Row>,
        rank: u32,
        what: &str,
        render: impl Fn(&str, &str) -> String,
    ) -> Result<()> {
        let created = self.created();
        for r in rows {
            let (class, oid, target, value): (u32, u32, Option<String>, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let key = ObjKey(class, oid);
            let Some(target) = target else {
                // The server cannot name an object this dump creates: its comment, owner or
                // grants would be lost, so the backup fails rather than skip them.
                if created.contains(&key) {
                    return Err(Error::Unsupported {
                        database: self.database.to_owned(),
                        reason: format!(
                            "cannot write the {what} catalog object {class}/{oid}: the server names no target for it; use engine pg_dump"
                        ),
                    });
                }
                continue;
            };
            let public = class == PG_NAMESPACE && target == "SCHEMA public";
            if !(created.contains(&key) || public) {
                continue;
            }
            let sql = render(&target, &value);
            self.push(Node::extra(
                Section::PostData,
                rank,
                format!("{what} {}", target.to_lowercase()),
                sql,
                key,
            ));
        }
        Ok(())
    }

    /// The catalog objects this dump creates.
    fn created(&self) -> HashSet<ObjKey> {
        self.nodes.iter().filter(|n| n.kind.is_some()).flat_map(|n| n.keys.iter().copied()).collect()
    }

    /// GRANT and REVOKE relative to each object's default privileges, and default privileges.
    async fn privileges(&mut self) -> Result<()> {
        let sql = format!(
            "with objs as (
               select {PG_CLASS}::oid c, c.oid o, 0 sub, case c.relkind when 'S' then 's' else 'r' end::\"char\" t, c.relowner owner, c.relacl acl
                 from pg_class c where c.relacl is not null and c.relkind in ('r', 'p', 'v', 'm', 'S')
               union all select {PG_CLASS}, a.attrelid, a.attnum, 'c', c.relowner, a.attacl
                 from pg_attribute a join pg_class c on c.oid = a.attrelid where a.attacl is not null and not a.attisdropped
               union all select {PG_NAMESPACE}, oid, 0, 'n', nspowner, coalesce(nspacl, acldefault('n', nspowner)) from pg_namespace
                 where nspacl is not null or nspname = 'public'
               union all select {PG_PROC}, oid, 0, 'f', proowner, proacl from pg_proc where proacl is not null
               union all select {PG_TYPE}, oid, 0, 'T', typowner, typacl from pg_type where typacl is not null
               union all select {PG_LARGEOBJECT}, oid, 0, 'L', lomowner, lomacl from pg_largeobject_metadata where lomacl is not null
             ), actual as (
               select o.c, o.o, o.sub, a.grantee, a.privilege_type, a.is_grantable from objs o, aclexplode(o.acl) a
             ), defaults as (
               select o.c, o.o, o.sub, a.grantee, a.privilege_type, a.is_grantable from objs o, aclexplode(acldefault(o.t, o.owner)) a
               where o.t <> 'c'
               -- What a new database's `public` has, and the target starts from.
               union all select o.c, o.o, 0, 0::oid, 'USAGE', false from objs o
               where o.c = {PG_NAMESPACE} and o.o = 'public'::regnamespace
             ), diff as (
               select 'REVOKE' verb, * from (select * from defaults except select * from actual) r
               union all select 'GRANT', * from (select * from actual except select * from defaults) g
             )
             select d.c, d.o,
               case when d.c = {PG_CLASS} and (select relkind from pg_class where oid = d.o) = 'S' then 'SEQUENCE '
                    when d.c = {PG_CLASS} then 'TABLE ' when d.c = {PG_NAMESPACE} then 'SCHEMA '
                    when d.c = {PG_PROC} then 'ROUTINE ' when d.c = {PG_TYPE} then 'TYPE ' else 'LARGE OBJECT ' end
                 || case when d.c = {PG_PROC} then {routine} else i.identity end,
               d.verb || ' ' || string_agg(d.privilege_type || coalesce('(' || (select quote_ident(attname) from pg_attribute
                   where attrelid = d.o and attnum = d.sub and d.sub > 0) || ')', ''), ', ' order by d.privilege_type),
               case when d.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(d.grantee)) end,
               d.is_grantable
             from diff d, lateral pg_identify_object(d.c, d.o, 0) i
             group by d.c, d.o, d.sub, i.identity, d.verb, d.grantee, d.is_grantable
             -- Grantees in the ACL's own order (as pg_dump writes them), so dumps diff cleanly.
             order by 3, d.verb desc,
               (select min(x.ord) from objs o2, aclexplode(o2.acl) with ordinality x(grantor, grantee, privilege_type, is_grantable, ord)
                where o2.c = d.c and o2.o = d.o and o2.sub = d.sub and x.grantee = d.grantee), 5",
            routine = routine_identity("d.o", false)
        );
        let rows = self.query("privileges", &sql).await?;
        let created = self.created();
        for r in rows {
            let (class, oid, target, verb, grantee, grantable): (u32, u32, String, String, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let key = ObjKey(class, oid);
            if !created.contains(&key) && target != "SCHEMA public" {
                continue;
            }
            let sql = if verb.starts_with("REVOKE") {
                format!("{verb} ON {target} FROM {grantee};")
            } else {
                format!(
                    "{verb} ON {target} TO {grantee}{};",
                    if grantable { " WITH GRANT OPTION" } else { "" }
                )
            };
            self.push(Node::extra(
                Section::PostData,
                180,
                format!("privileges on {}", target.to_lowercase()),
                sql,
                key,
            ));
        }
        let sql = "with d as (
                     select da.oid, da.defaclrole role, da.defaclnamespace nsp, da.defaclobjtype t, a.grantee, a.privilege_type, a.is_grantable
                     from pg_default_acl da, aclexplode(da.defaclacl) a
                   ), base as (
                     select da.oid, da.defaclrole role, da.defaclnamespace nsp, da.defaclobjtype t, a.grantee, a.privilege_type, a.is_grantable
                     from pg_default_acl da, aclexplode(acldefault(case da.defaclobjtype when 'S' then 's' else da.defaclobjtype end, da.defaclrole)) a
                     where da.defaclnamespace = 0
                   ), diff as (
                     select 'REVOKE' verb, * from (select * from base except select * from d) r
                     union all select 'GRANT', * from (select * from d except select * from base) g
                   )
                   select format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s %s %s ON %s %s %s%s;',
                       pg_get_userbyid(role), (select ' IN SCHEMA ' || quote_ident(nspname) from pg_namespace where oid = nsp),
                       verb, string_agg(privilege_type, ', ' order by privilege_type),
                       case t when 'r' then 'TABLES' when 'S' then 'SEQUENCES' when 'f' then 'FUNCTIONS' when 'T' then 'TYPES' else 'SCHEMAS' end,
                       case verb when 'GRANT' then 'TO' else 'FROM' end,
                       case when grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(grantee)) end,
                       case when is_grantable and verb = 'GRANT' then ' WITH GRANT OPTION' end),
                     nsp
                   from diff group by oid, role, nsp, t, verb, grantee, is_grantable order by 1";
        for r in self.query("default privileges", sql).await? {
            let (sql, nsp): (String, u32) = (r.get(0), r.get(1));
            self.push(Node::extra(
                Section::PostData,
                185,
                "default privileges".into(),
                sql,
                ObjKey(PG_NAMESPACE, nsp),
            ));
        }
        Ok(())
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

/// A column inside CREATE TABLE.
/// A column's statistics target, storage and compression where set, each a statement on
/// `table` (a table or materialized view).
fn column_settings(table: &str, c: &Column) -> Vec<String> {
    let alter = format!("ALTER TABLE ONLY {table} ALTER COLUMN {}", c.name);
    let mut out = Vec::new();
    if c.stattarget >= 0 {
        out.push(format!("{alter} SET STATISTICS {};", c.stattarget));
    }
    if let Some(s) = &c.storage {
        out.push(format!("{alter} SET STORAGE {s};"));
    }
    if let Some(m) = &c.compression {
        out.push(format!("{alter} SET COMPRESSION {m};"));
    }
    out
}

fn column_def(c: &Column, identity: Option<&Sequence>) -> String {
    let mut s = format!("{} {}", c.name, c.type_name);
    if let Some(co) = &c.collation {
        s.push_str(&format!(" COLLATE {co}"));
    }
    if c.generated == "s" {
        s.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", c.default.as_deref().unwrap_or_default()));
    } else if let Some(seq) = identity.filter(|_| !c.identity.is_empty()) {
        let how = if c.identity == "a" { "ALWAYS" } else { "BY DEFAULT" };
        s.push_str(&format!(
            " GENERATED {how} AS IDENTITY ({})",
            seq.identity.as_deref().unwrap_or_default()
        ));
    } else if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
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

/// `CREATE COLLATION`'s options from a `pg_collation` row (as JSON, any version 14+).
fn collation_options(row: &serde_json::Value) -> std::result::Result<String, String> {
    let text = |key: &str| row.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    let literal = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut options = Vec::new();
    match text("collprovider") {
        Some("c") => {
            options.push("provider = libc".to_owned());
            let (collate, ctype) = (text("collcollate"), text("collctype"));
            let collate = collate.ok_or("no lc_collate")?;
            options.push(format!("lc_collate = {}", literal(collate)));
            options.push(format!("lc_ctype = {}", literal(ctype.unwrap_or(collate))));
        }
        Some("i") => {
            options.push("provider = icu".to_owned());
            // 17+: colllocale; 15–16: colliculocale; 14: collcollate.
            let locale = text("colllocale")
                .or(text("colliculocale"))
                .or(text("collcollate"))
                .ok_or("no ICU locale")?;
            options.push(format!("locale = {}", literal(locale)));
            if let Some(rules) = text("collicurules") {
                options.push(format!("rules = {}", literal(rules)));
            }
        }
        other => return Err(format!("provider {other:?} is not one CREATE COLLATION takes")),
    }
    if row.get("collisdeterministic").and_then(|v| v.as_bool()) == Some(false) {
        options.push("deterministic = false".to_owned());
    }
    Ok(options.join(", "))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::icu_15(r#"{"collprovider": "i", "colliculocale": "und-u-ks-level2", "collcollate": null, "collisdeterministic": false}"#,
        "provider = icu, locale = 'und-u-ks-level2', deterministic = false")]
    #[case::icu_17_rules(
        r#"{"collprovider": "i", "colllocale": "de", "collicurules": "&a < b", "collisdeterministic": true}"#,
        "provider = icu, locale = 'de', rules = '&a < b'"
    )]
    #[case::icu_14(
        r#"{"collprovider": "i", "collcollate": "fr-x-icu", "collisdeterministic": true}"#,
        "provider = icu, locale = 'fr-x-icu'"
    )]
    #[case::libc(r#"{"collprovider": "c", "collcollate": "de_DE.utf8", "collctype": "de_DE.utf8", "collisdeterministic": true}"#,
        "provider = libc, lc_collate = 'de_DE.utf8', lc_ctype = 'de_DE.utf8'")]
    #[case::quotes(
        r#"{"collprovider": "c", "collcollate": "x'y", "collisdeterministic": true}"#,
        "provider = libc, lc_collate = 'x''y', lc_ctype = 'x''y'"
    )]
    fn collations_from_any_versions_catalog_row(#[case] row: &str, #[case] options: &str) {
        assert_eq!(collation_options(&serde_json::from_str(row).unwrap()).unwrap(), options);
    }

    #[test]
    fn collations_without_a_usable_provider_are_refused() {
        let err = collation_options(&serde_json::json!({"collprovider": "d"})).unwrap_err();
        assert!(err.contains("provider"), "{err}");
        assert!(collation_options(&serde_json::json!({"collprovider": "i"})).is_err());
    }

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
    }

    #[rstest]
    #[case("public.orders", "orders")]
    #[case("\"my.schema\".\"a.b\"", "\"a.b\"")]
    #[case("plain", "plain")]
    fn unqualified_names(#[case] q: &str, #[case] expected: &str) {
        assert_eq!(unqualified(q), expected);
    }

    fn column(name: &str) -> Column {
        Column {
            attnum: 1,
            name: name.into(),
            type_name: "integer".into(),
            not_null: false,
            default: None,
            identity: String::new(),
            generated: String::new(),
            local: true,
            collation: None,
            stattarget: -1,
            storage: None,
            attrdef: None,
            compression: None,
        }
    }

    #[test]
    fn column_definitions() {
        let mut c = column("id");
        c.not_null = true;
        c.identity = "a".into();
        let seq = Sequence {
            oid: 1,
            identity: Some("SEQUENCE NAME public.t_id_seq START WITH 1".into()),
            owned: false,
        };
        assert_eq!(
            column_def(&c, Some(&seq)),
            "id integer GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME public.t_id_seq START WITH 1) NOT NULL"
        );
        let mut g = column("total");
        g.generated = "s".into();
        g.default = Some("(a + b)".into());
        assert_eq!(column_def(&g, None), "total integer GENERATED ALWAYS AS ((a + b)) STORED");
        let mut d = column("\"Name\"");
        d.type_name = "text".into();
        d.collation = Some("pg_catalog.\"C\"".into());
        d.default = Some("'x'::text".into());
        assert_eq!(column_def(&d, None), "\"Name\" text COLLATE pg_catalog.\"C\" DEFAULT 'x'::text");
        assert_eq!(sql_literal("a'b"), "'a''b'");
    }
}
