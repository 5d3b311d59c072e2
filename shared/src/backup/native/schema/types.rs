//! Schemas, extensions, collations, and types (enums, composites, domains, ranges).

use super::*;

impl Reader<'_> {
    pub(super) async fn schemas(&mut self) -> Result<()> {
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

    /// Casts made with `CREATE CAST` (outside extensions).
    pub(super) async fn casts(&mut self) -> Result<()> {
        let sql = format!(
            "select c.oid, format('(%s AS %s)', format_type(c.castsource, null), format_type(c.casttarget, null)),
               c.castmethod::text, c.castfunc::regprocedure::text, c.castcontext::text
             from pg_cast c where c.oid >= {FIRST_NORMAL_OID} order by 2"
        );
        for r in self.query("casts", &sql).await? {
            let (oid, name, method, function, context): (u32, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            let how = match method.as_str() {
                "f" => format!("WITH FUNCTION {function}"),
                "i" => "WITH INOUT".to_owned(),
                _ => "WITHOUT FUNCTION".to_owned(),
            };
            let when = match context.as_str() {
                "a" => " AS ASSIGNMENT",
                "i" => " AS IMPLICIT",
                _ => "",
            };
            self.push(
                Node::new(
                    Section::PreData,
                    44,
                    "cast",
                    format!("cast {name}"),
                    format!("CREATE CAST {name} {how}{when};"),
                )
                .keys([ObjKey(PG_CAST, oid)]),
            );
        }
        Ok(())
    }

    /// Returns the extension nodes by their key, for the members' aliases.
    pub(super) async fn extensions(&mut self) -> Result<HashMap<ObjKey, usize>> {
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
    pub(super) async fn collations(&mut self) -> Result<()> {
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

    /// Enums, ranges, domains, composite types, base types and shells.
    pub(super) async fn types(&mut self) -> Result<()> {
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
                   concat(case when r.rngsubdiff <> 0 then ', subtype_diff = ' || r.rngsubdiff::regproc::text end,
                     case when r.rngcanonical <> 0 then ', canonical = ' || r.rngcanonical::regproc::text end),
                   mn.nspname, m.typname)
                 from pg_range r join pg_type m on m.oid = r.rngmultitypid join pg_namespace mn on mn.oid = m.typnamespace
                 where r.rngtypid = t.oid),
               (select array[r.rngmultitypid, m.typarray] from pg_range r join pg_type m on m.oid = r.rngmultitypid where r.rngtypid = t.oid),
               case when t.typtype = 'b' then concat_ws(E',\\n    ',
                 'INTERNALLENGTH = ' || case when t.typlen < 0 then 'variable' else t.typlen::text end,
                 'INPUT = ' || t.typinput::regproc, 'OUTPUT = ' || t.typoutput::regproc,
                 'RECEIVE = ' || nullif(t.typreceive, 0)::regproc, 'SEND = ' || nullif(t.typsend, 0)::regproc,
                 'TYPMOD_IN = ' || nullif(t.typmodin, 0)::regproc, 'TYPMOD_OUT = ' || nullif(t.typmodout, 0)::regproc,
                 'ANALYZE = ' || nullif(t.typanalyze, 0)::regproc, 'SUBSCRIPT = ' || nullif(t.typsubscript, 0)::regproc,
                 case when t.typbyval then 'PASSEDBYVALUE' end,
                 'ALIGNMENT = ' || case t.typalign when 'c' then 'char' when 's' then 'int2' when 'i' then 'int4' else 'double' end,
                 'STORAGE = ' || case t.typstorage when 'p' then 'plain' when 'e' then 'external' when 'm' then 'main' else 'extended' end,
                 'CATEGORY = ' || quote_literal(t.typcategory::text), case when t.typispreferred then 'PREFERRED = true' end,
                 'DEFAULT = ' || quote_literal(t.typdefault), 'ELEMENT = ' || format_type(nullif(t.typelem, 0), null),
                 'DELIMITER = ' || quote_literal(t.typdelim::text), case when t.typcollation <> 0 then 'COLLATABLE = true' end) end,
               t.typtype in ('b', 'p') or exists (select 1 from pg_range r where r.rngtypid = t.oid and r.rngcanonical <> 0)
             from pg_type t join pg_namespace n on n.oid = t.typnamespace left join pg_class c on c.oid = t.typrelid
             where {USER_SCHEMA} and (t.typtype in ('e', 'r', 'd', 'c') and (t.typrelid = 0 or c.relkind = 'c')
               or t.typtype in ('b', 'p') and t.oid >= {FIRST_NORMAL_OID}
                 and not exists (select 1 from pg_type e where e.typarray = t.oid))
             order by 3"
        );
        let rows = self.query("types", &sql).await?;
        let domain_checks = self.domain_constraints().await?;
        let composite_columns = self.columns("composite types", "c.relkind = 'c'").await?;
        for r in rows {
            let (oid, kind, name, nsp, array, relid): (u32, String, String, u32, u32, u32) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let mut keys = vec![ObjKey(PG_TYPE, oid), ObjKey(PG_TYPE, array)];
            // A type and its functions need each other (a base type's input and output, a
            // range's canonical function): as pg_dump does, a shell first, then the functions,
            // then the definition, which completes the shell.
            let shell: bool = r.get(14);
            if shell {
                keys.remove(0);
                self.push(
                    Node::new(
                        Section::PreData,
                        28,
                        "shell type",
                        format!("shell type {name}"),
                        format!("CREATE TYPE {name};"),
                    )
                    .keys([ObjKey(PG_TYPE, oid)])
                    .needs([ObjKey(PG_NAMESPACE, nsp)]),
                );
                if kind == "p" {
                    continue; // only a shell (CREATE TYPE name;)
                }
            }
            let (node_kind, label, sql) = match kind.as_str() {
                "b" => {
                    let def: String = r.get(13);
                    ("type", format!("type {name}"), format!("CREATE TYPE {name} (\n    {def}\n);"))
                }
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
            self.push(Node {
                completes: shell.then_some(oid),
                ..Node::new(Section::PreData, rank, node_kind, label, sql)
                    .keys(keys)
                    .needs([ObjKey(PG_NAMESPACE, nsp)])
            });
        }
        Ok(())
    }

    /// Domain CHECK constraints by domain: `(constraint oid, "CONSTRAINT name CHECK …", validated)`.
    pub(super) async fn domain_constraints(&self) -> Result<HashMap<u32, Vec<(u32, String, bool)>>> {
        let sql = "select co.contypid, co.oid, format('CONSTRAINT %I %s', co.conname, pg_get_constraintdef(co.oid)), co.convalidated
                   from pg_constraint co where co.contypid <> 0 and co.contype = 'c' order by co.contypid, co.conname";
        let mut out: HashMap<u32, Vec<(u32, String, bool)>> = HashMap::new();
        for r in self.query("domain constraints", sql).await? {
            out.entry(r.get(0)).or_default().push((r.get(1), r.get(2), r.get(3)));
        }
        Ok(out)
    }
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
}
