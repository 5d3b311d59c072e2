//! Sequences, tables (partitions, inheritance children), views, materialized views, and
//! large objects.

use super::*;

impl Reader<'_> {
    /// Columns of the relations matching `filter` (on `pg_class c`), by relation, in order.
    pub(super) async fn columns(&self, context: &str, filter: &str) -> Result<HashMap<u32, Vec<Column>>> {
        let sql = format!(
            "select a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, a.attislocal,
               (select format('%I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                 where co.oid = a.attcollation and a.attcollation <> t.typcollation),
               coalesce(a.attstattarget::int, -1),
               case when a.attstorage <> t.typstorage then case a.attstorage when 'p' then 'PLAIN' when 'e' then 'EXTERNAL'
                 when 'm' then 'MAIN' else 'EXTENDED' end end,
               d.oid, case a.attcompression when 'p' then 'pglz' when 'l' then 'lz4' end,
               nullif({column_options}, ''), array_to_string(a.attoptions, ', ')
             from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
             join pg_type t on t.oid = a.atttypid left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
             where a.attnum > 0 and not a.attisdropped and {USER_SCHEMA} and {filter}
             order by a.attrelid, a.attnum",
            column_options = foreign::options_clause("a.attfdwoptions"),
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
                foreign_options: r.get(14),
                options: r.get(15),
            });
        }
        Ok(out)
    }

    /// All sequences; standalone ones become nodes, identity ones are part of their table.
    /// Extensions' configuration relations with their conditions (empty: every row).
    pub(super) async fn extension_configuration(&self) -> Result<HashMap<u32, String>> {
        let sql = "select c.oid, coalesce(c.cond, '') from pg_extension e,
                     unnest(e.extconfig, e.extcondition) c(oid, cond) where e.extconfig is not null";
        Ok(self.query("extension configuration", sql).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(super) async fn sequences(&mut self) -> Result<HashMap<u32, Sequence>> {
        let sql = format!(
            "select c.oid, format('%I.%I', n.nspname, c.relname), c.relnamespace, c.relpersistence = 'u', format_type(s.seqtypid, null),
               s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               d.deptype::text, d.refobjid, (select quote_ident(a.attname) from pg_attribute a where a.attrelid = d.refobjid and a.attnum = d.refobjsubid),
               d.refobjid::regclass::text, pg_sequence_last_value(c.oid),
               (select t.relpersistence <> c.relpersistence from pg_class t where t.oid = d.refobjid)
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
            // An identity sequence logged otherwise than its table says so (as pg_dump 15.8+).
            let persistence = match (r.get::<_, Option<bool>>(16), unlogged) {
                (Some(true), true) => " UNLOGGED",
                (Some(true), false) => " LOGGED",
                _ => "",
            };
            let identity = (deptype.as_deref() == Some("i"))
                .then(|| format!("SEQUENCE NAME {name} {options}{persistence}"));
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
            let value = Node::extra(Section::PostData, 150, format!("value of sequence {name}"), setval, key);
            if self.configuration.contains_key(&oid) {
                // An extension's configuration sequence: the extension makes it, its value is data.
                self.push_on_extension_object(value);
            } else {
                self.push(value);
            }
            out.insert(oid, Sequence { oid, identity, owned });
        }
        Ok(out)
    }

    /// Tables, partitions, views and materialized views.
    pub(super) async fn relations(&mut self, sequences: &HashMap<u32, Sequence>) -> Result<()> {
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
               n.nspname, c.relname, pg_relation_size(c.oid) / current_setting('block_size')::bigint,
               (select format(' SERVER %I', s.srvname) || {table_options} from pg_foreign_table ft
                  join pg_foreign_server s on s.oid = ft.ftserver where ft.ftrelid = c.oid),
               format_type(nullif(c.reloftype, 0), null),
               (select quote_ident(am.amname) from pg_am am where am.oid = c.relam and c.relkind = 'r' and am.amname <> 'heap')
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p', 'v', 'm', 'f') and {USER_SCHEMA} order by 3",
            table_options = foreign::options_clause("ft.ftoptions"),
        );
        let rows = self.query("tables and views", &sql).await?;
        let columns = self.columns("columns", "c.relkind in ('r', 'p', 'v', 'm', 'f')").await?;
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
                    let typed: Option<String> = r.get(24);
                    for c in cols {
                        keys.extend(c.attrdef.map(|d| ObjKey(PG_ATTRDEF, d)));
                        if typed.is_some() {
                            // A typed table's columns are its type's: only their options.
                            let mut options = String::new();
                            if let Some(d) = c.default.as_ref().filter(|_| c.generated.is_empty()) {
                                options.push_str(&format!(" DEFAULT {d}"));
                            }
                            if c.not_null {
                                options.push_str(" NOT NULL");
                            }
                            if !options.is_empty() {
                                body.push(format!("    {} WITH OPTIONS{options}", c.name));
                            }
                        } else if c.local || partition.is_some() {
                            // A partition is written whole, as a table of its own, then attached
                            // (as pg_dump does): its columns keep their order and their defaults.
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
                    let foreign: Option<String> = r.get(23);
                    let what = match (&foreign, unlogged) {
                        (Some(_), _) => "FOREIGN TABLE",
                        (None, true) => "UNLOGGED TABLE",
                        (None, false) => "TABLE",
                    };
                    let node_kind = if foreign.is_some() { "foreign table" } else { "table" };
                    let inherits = if parents.is_empty() || partition.is_some() {
                        String::new()
                    } else {
                        let p: Vec<&str> =
                            parents.iter().filter_map(|p| names.get(p)).map(String::as_str).collect();
                        format!("\nINHERITS ({})", p.join(", "))
                    };
                    let of = typed.as_deref().map(|t| format!(" OF {t}")).unwrap_or_default();
                    let columns = if typed.is_some() && body.is_empty() {
                        String::new()
                    } else {
                        format!(" (\n{}\n)", body.join(",\n"))
                    };
                    let mut sql = format!(
                        "CREATE {what} {name}{of}{columns}{inherits}{}",
                        foreign.as_deref().map(|f| format!("\n{}", f.trim_start())).unwrap_or_default()
                    );
                    if let Some(k) = partition_key {
                        sql.push_str(&format!("\nPARTITION BY {k}"));
                    }
                    if let Some(method) = r.get::<_, Option<String>>(25) {
                        sql.push_str(&format!("\nUSING {method}"));
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
                        Node::new(Section::PreData, 60, node_kind, format!("{node_kind} {name}"), sql)
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
                    // A foreign table has no replica identity to set (its catalog says NOTHING).
                    if (replident == "f" || replident == "n") && foreign.is_none() {
                        let what = if replident == "f" { "FULL" } else { "NOTHING" };
                        self.push(Node::extra(
                            Section::PostData,
                            145,
                            format!("replica identity of {name}"),
                            format!("ALTER TABLE ONLY {name} REPLICA IDENTITY {what};"),
                            on,
                        ));
                    }
                    let filter = self.configuration.get(&oid).cloned();
                    if kind == "r" && (filter.is_some() || !self.members.contains(&ObjKey(PG_CLASS, oid))) {
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
                            filter,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Identity sequences by `(table, column)`.
    pub(super) async fn identity_sequences<'s>(
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
    pub(super) async fn table_checks(&self) -> Result<HashMap<u32, Vec<(u32, String)>>> {
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

    /// How many large objects the snapshot holds.
    pub(super) async fn count_large_objects(&mut self) -> Result<u64> {
        let rows = self.query("large objects", "select count(*) from pg_largeobject_metadata").await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }
}

/// A column inside CREATE TABLE.
fn column_def(c: &Column, identity: Option<&Sequence>) -> String {
    let mut s = format!("{} {}{}", c.name, c.type_name, c.foreign_options.as_deref().unwrap_or_default());
    if let Some(co) = &c.collation {
        s.push_str(&format!(" COLLATE {co}"));
    }
    if c.generated == "s" || c.generated == "v" {
        // `v`: PostgreSQL 18's virtual generated columns.
        let how = if c.generated == "s" { "STORED" } else { "VIRTUAL" };
        s.push_str(&format!(" GENERATED ALWAYS AS ({}) {how}", c.default.as_deref().unwrap_or_default()));
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
    if let Some(o) = &c.options {
        out.push(format!("{alter} SET ({o});"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            foreign_options: None,
            options: None,
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
        g.generated = "v".into();
        assert_eq!(column_def(&g, None), "total integer GENERATED ALWAYS AS ((a + b)) VIRTUAL");
        let mut d = column("\"Name\"");
        d.type_name = "text".into();
        d.collation = Some("pg_catalog.\"C\"".into());
        d.default = Some("'x'::text".into());
        assert_eq!(column_def(&d, None), "\"Name\" text COLLATE pg_catalog.\"C\" DEFAULT 'x'::text");
        assert_eq!(sql_literal("a'b"), "'a''b'");
    }
}
