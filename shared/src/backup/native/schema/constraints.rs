//! After the data: constraints, indexes, triggers, rules, policies, statistics objects.

use super::*;

impl Reader<'_> {
    /// Primary keys, unique, exclusion and foreign keys, NOT VALID checks; indexes, the
    /// attachment of partitions' indexes to their parents', CLUSTER ON and replica identity.
    pub(super) async fn constraints_and_indexes(&mut self) -> Result<()> {
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

    pub(super) async fn triggers_rules_policies(&mut self) -> Result<()> {
        let sql = format!(
            "select tg.oid, tg.tgrelid, pg_get_triggerdef(tg.oid), quote_ident(tg.tgname), tg.tgenabled::text, c.oid::regclass::text
             from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
             where {USER_SCHEMA} and not tg.tgisinternal and tg.tgparentid = 0 order by 6, 4"
        );
        for r in self.query("triggers", &sql).await? {
            let (oid, rel, def, name, enabled, table): (u32, u32, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let mut sql = format!("{def};");
            if enabled != "O" {
                sql.push_str(&format!("\nALTER TABLE {table} {} TRIGGER {name};", trigger_state(&enabled)));
            }
            self.push(
                Node::new(Section::PostData, 140, "trigger", format!("trigger {name} on {table}"), sql)
                    .keys([ObjKey(PG_TRIGGER, oid)])
                    .needs([ObjKey(PG_CLASS, rel)]),
            );
        }
        // A partition's copy of its parent's trigger comes with the parent's; only a state of its
        // own is written (after the parent's, which reaches the partitions too).
        let sql = format!(
            "select tg.oid, tg.tgrelid, tg.tgparentid, quote_ident(tg.tgname), tg.tgenabled::text, c.oid::regclass::text
             from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
             join pg_trigger p on p.oid = tg.tgparentid
             where {USER_SCHEMA} and tg.tgparentid <> 0 and tg.tgenabled <> p.tgenabled order by 6, 4"
        );
        for r in self.query("partitions' trigger states", &sql).await? {
            let (oid, rel, parent, name, enabled, table): (u32, u32, u32, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let verb = trigger_state(&enabled);
            self.push(
                Node::extra(
                    Section::PostData,
                    142,
                    format!("state of trigger {name} on {table}"),
                    format!("ALTER TABLE {table} {verb} TRIGGER {name};"),
                    ObjKey(PG_CLASS, rel),
                )
                .keys([ObjKey(PG_TRIGGER, oid)])
                .needs([ObjKey(PG_TRIGGER, parent)]),
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

    /// Event triggers, last (as pg_dump writes them: they would fire during the restore), in
    /// their enabled state.
    pub(super) async fn event_triggers(&mut self) -> Result<()> {
        let sql = format!(
            "select e.oid, quote_ident(e.evtname),
               format(E'CREATE EVENT TRIGGER %I ON %I%s\\n    EXECUTE FUNCTION %s();', e.evtname, e.evtevent,
                 E'\\n    WHEN TAG IN (' || (select string_agg(quote_literal(t), ', ') from unnest(e.evttags) t) || ')',
                 e.evtfoid::regproc)
               || case e.evtenabled when 'D' then format(E'\\nALTER EVENT TRIGGER %I DISABLE;', e.evtname)
                    when 'R' then format(E'\\nALTER EVENT TRIGGER %I ENABLE REPLICA;', e.evtname)
                    when 'A' then format(E'\\nALTER EVENT TRIGGER %I ENABLE ALWAYS;', e.evtname) else '' end
             from pg_event_trigger e where e.oid >= {FIRST_NORMAL_OID} order by 2"
        );
        for r in self.query("event triggers", &sql).await? {
            let (oid, name, sql): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
            self.push(
                Node::new(Section::PostData, 195, "event trigger", format!("event trigger {name}"), sql)
                    .keys([ObjKey(PG_EVENT_TRIGGER, oid)]),
            );
        }
        Ok(())
    }
}

/// `ALTER TABLE … {state} TRIGGER` for a `tgenabled` value.
fn trigger_state(enabled: &str) -> &'static str {
    match enabled {
        "D" => "DISABLE",
        "R" => "ENABLE REPLICA",
        "A" => "ENABLE ALWAYS",
        _ => "ENABLE",
    }
}
